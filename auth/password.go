package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// HashParams are argon2id's cost settings. The encoded hash carries them,
// so raising them later leaves existing passwords verifiable.
type HashParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultHashParams follow OWASP's argon2id minimum (19 MiB, 2 passes, 1
// lane): about 30-60 ms per login on one core of this class of machine.
var DefaultHashParams = HashParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MinPasswordLen and MaxPasswordLen bound what a password may be (in
	// bytes). The upper bound keeps hashing cost independent of input.
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// ErrBadHash is returned for a stored hash that is not ours.
var ErrBadHash = errors.New("auth: stored password hash not in argon2id PHC format")

// HashPassword returns the PHC string $argon2id$v=19$m=..,t=..,p=..$salt$key.
func HashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches the PHC string encoded.
func VerifyPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrBadHash
	}
	var p HashParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, ErrBadHash
	}
	// Refuse absurd parameters rather than let a tampered row allocate
	// gigabytes.
	if p.Time < 1 || p.Time > 16 || p.MemoryKiB < 8 || p.MemoryKiB > 1<<20 || p.Threads < 1 {
		return false, ErrBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// CheckPassword says what is wrong with a new password, or nil.
func CheckPassword(name, password string) error {
	switch {
	case len(password) < MinPasswordLen:
		return &InputError{Name: "password", Problem: fmt.Sprintf("at least %d characters", MinPasswordLen)}
	case len(password) > MaxPasswordLen:
		return &InputError{Name: "password", Problem: fmt.Sprintf("at most %d bytes", MaxPasswordLen)}
	case !utf8.ValidString(password):
		return &InputError{Name: "password", Problem: "not valid UTF-8"}
	case strings.ContainsAny(password, "\x00\r\n"):
		return &InputError{Name: "password", Problem: "contains a control character"}
	case strings.Contains(strings.ToLower(password), strings.ToLower(name)) && name != "":
		return &InputError{Name: "password", Problem: "must not contain the account name"}
	case strings.Count(password, password[:1]) == len(password):
		return &InputError{Name: "password", Problem: "must not repeat one character"}
	}
	return nil
}

// RandomPassword returns a password of 24 URL-safe characters (144 bits).
func RandomPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

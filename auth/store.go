package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
)

// Errors callers test with errors.Is. They are api problems, so api.Fail
// answers them with their status and code; their text is safe to show.
var (
	ErrNotFound       = fmt.Errorf("account %w", api.ErrNotFound)
	ErrTokenNotFound  = fmt.Errorf("active token %w", api.ErrNotFound)
	ErrExists         = api.NewProblem(http.StatusConflict, "exists", "an account with that name exists")
	ErrTokenExists    = api.NewProblem(http.StatusConflict, "exists", "an active token with that name exists")
	ErrBadCredentials = api.NewProblem(http.StatusUnauthorized, "invalid_credentials", "wrong name or password")
	ErrLastAdmin      = api.NewProblem(http.StatusConflict, "last_admin", "that would leave no enabled city-wide admin")
	// ErrBusy: no password-hashing slot came free within the wait cap.
	ErrBusy = fmt.Errorf("too many sign-ins at once: %w", api.ErrUnavailable)
)

// InputError is a bad field in a request or command; it is safe to show
// (api.Fail answers it with 400 bad_parameter).
type InputError = api.ParamError

// Token prefixes tell a session token from an API token at a glance (and
// let secret scanners find leaked ones).
const (
	sessionPrefix = "iocs_"
	tokenPrefix   = "ioct_"
	// MaxWards caps a ward scope; Hanoi has 126 wards and communes.
	MaxWards = 200
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
	wardRE = regexp.MustCompile(`^[0-9]{5}$`)
)

// NormalizeName lower-cases an account or token name and checks it.
func NormalizeName(field, name string) (string, error) {
	if len(name) > 64 {
		return "", &InputError{Name: field, Problem: "at most 64 characters"}
	}
	n := strings.ToLower(name)
	if !nameRE.MatchString(n) {
		return "", &InputError{Name: field, Problem: "1-64 of a-z 0-9 . _ @ - starting with a letter or digit"}
	}
	return n, nil
}

// NormalizeWards checks ward codes (5 digits) and returns them sorted
// without duplicates; nil means every ward.
func NormalizeWards(wards []string) ([]string, error) {
	if len(wards) > MaxWards {
		return nil, &InputError{Name: "wards", Problem: fmt.Sprintf("at most %d", MaxWards)}
	}
	out := make([]string, 0, len(wards))
	for _, w := range wards {
		w = strings.TrimSpace(w)
		if !wardRE.MatchString(w) {
			return nil, &InputError{Name: "wards", Problem: "each ward is a 5-digit code such as 00004"}
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Store keeps users, sessions and API tokens in PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	params HashParams
	// hashing bounds concurrent argon2 computations: each takes
	// MemoryKiB and a core, so a login flood must queue, not exhaust memory.
	hashing chan struct{}
	// hashWait caps the wait for a hashing slot (ErrBusy after it).
	hashWait time.Duration
	dummy    string // a hash to verify against for unknown names (same timing)
	// checks counts password verifications (tests; and the metric).
	checks atomic.Int64
}

// NewStore returns a store hashing with p (DefaultHashParams if zero),
// allowing at most concurrent hashes at once.
func NewStore(pool *pgxpool.Pool, p HashParams, concurrent int) *Store {
	if p == (HashParams{}) {
		p = DefaultHashParams
	}
	if concurrent < 1 {
		concurrent = 2
	}
	dummy, _ := HashPassword(RandomPassword(), p)
	return &Store{pool: pool, params: p, hashing: make(chan struct{}, concurrent), hashWait: DefaultHashWait, dummy: dummy}
}

// DefaultHashWait is how long a request waits for a hashing slot: with 2
// slots and 30-60 ms per hash, about 60 sign-ins queued.
const DefaultHashWait = 2 * time.Second

func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.hashing <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.hashWait)
	defer t.Stop()
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-t.C:
		hashBusy.Inc()
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.hashing }

func (s *Store) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(password, s.params)
}

func (s *Store) verify(ctx context.Context, encoded, password string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	s.checks.Add(1)
	passwordChecks.Inc()
	return VerifyPassword(encoded, password)
}

// User is a control-room account.
type User struct {
	ID          int64      `json:"-"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	Wards       []string   `json:"wards"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

// Caller returns the api.Caller the user acts as.
func (u User) Caller() api.Caller {
	return api.Caller{Name: u.Name, Role: u.Role, Wards: u.Wards}
}

const userCols = `id, name, role, wards, disabled, created_at, updated_at, last_login_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Name, &u.Role, &u.Wards, &u.Disabled, &u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	if u.Wards == nil {
		u.Wards = []string{}
	}
	return u, err
}

// NewUser is what AddUser needs.
type NewUser struct {
	Name     string
	Role     string
	Wards    []string
	Password string
}

func (n *NewUser) validate() error {
	var err error
	if n.Name, err = NormalizeName("name", n.Name); err != nil {
		return err
	}
	if !ValidRole(n.Role) {
		return &InputError{Name: "role", Problem: "one of " + strings.Join(Roles, ", ")}
	}
	if n.Wards, err = NormalizeWards(n.Wards); err != nil {
		return err
	}
	return CheckPassword(n.Name, n.Password)
}

// AddUser creates an account. ErrExists if the name is taken.
func (s *Store) AddUser(ctx context.Context, n NewUser) (User, error) {
	if err := n.validate(); err != nil {
		return User{}, err
	}
	h, err := s.hash(ctx, n.Password)
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `INSERT INTO users (name, role, wards, password_hash)
		VALUES ($1, $2, $3, $4) RETURNING `+userCols, n.Name, n.Role, n.Wards, h))
	if isUnique(err) {
		return User{}, ErrExists
	}
	if err != nil {
		return User{}, fmt.Errorf("add user: %w", err)
	}
	return u, nil
}

// AddFirstAdmin creates the admin account only if there are no accounts
// at all; created is false if someone else got there first.
func (s *Store) AddFirstAdmin(ctx context.Context, name, password string) (created bool, err error) {
	n := NewUser{Name: name, Role: RoleAdmin, Password: password}
	if err := n.validate(); err != nil {
		return false, err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO users (name, role, password_hash)
		SELECT $1, 'admin', $2 WHERE NOT EXISTS (SELECT 1 FROM users)
		ON CONFLICT (name) DO NOTHING`, n.Name, h)
	if err != nil {
		return false, fmt.Errorf("add first admin: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// CountUsers counts accounts, disabled ones included.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}

// User returns one account by name.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	name, err := NormalizeName("name", name)
	if err != nil {
		return User{}, ErrNotFound
	}
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
}

// Users lists every account by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY name LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UserChange is a partial update; nil fields are left alone.
type UserChange struct {
	Role     *string
	Wards    *[]string
	Disabled *bool
	Password *string
}

// UpdateUser applies ch. Disabling an account or changing its password,
// role or wards ends its sessions. Refuses (ErrLastAdmin) a change that
// would leave no enabled, city-wide admin.
func (s *Store) UpdateUser(ctx context.Context, name string, ch UserChange) (User, error) {
	if ch.Role != nil && !ValidRole(*ch.Role) {
		return User{}, &InputError{Name: "role", Problem: "one of " + strings.Join(Roles, ", ")}
	}
	var wards []string
	if ch.Wards != nil {
		var err error
		if wards, err = NormalizeWards(*ch.Wards); err != nil {
			return User{}, err
		}
	}
	var hash string
	if ch.Password != nil {
		if err := CheckPassword(name, *ch.Password); err != nil {
			return User{}, err
		}
		var err error
		if hash, err = s.hash(ctx, *ch.Password); err != nil {
			return User{}, err
		}
	}
	name, err := NormalizeName("name", name)
	if err != nil {
		return User{}, ErrNotFound
	}
	var u User
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialise admin changes so two concurrent demotions cannot both
		// pass the last-admin check.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7420)`); err != nil {
			return err
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET
				role = coalesce($2, role),
				wards = CASE WHEN $3 THEN $4::text[] ELSE wards END,
				disabled = coalesce($5, disabled),
				password_hash = CASE WHEN $6 <> '' THEN $6 ELSE password_hash END,
				password_changed_at = CASE WHEN $6 <> '' THEN now() ELSE password_changed_at END,
				updated_at = now()
			WHERE name = $1 RETURNING `+userCols,
			name, ch.Role, ch.Wards != nil, wards, ch.Disabled, hash))
		if err != nil {
			return err
		}
		var admins int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users
			WHERE role = 'admin' AND NOT disabled AND cardinality(wards) = 0`).Scan(&admins); err != nil {
			return err
		}
		if admins == 0 {
			return ErrLastAdmin
		}
		if ch.Role != nil || ch.Wards != nil || ch.Disabled != nil || ch.Password != nil {
			_, err = tx.Exec(ctx, `UPDATE sessions SET revoked_at = now()
				WHERE user_id = $1 AND revoked_at IS NULL`, u.ID)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrLastAdmin) {
			return User{}, err
		}
		return User{}, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// Exists reports whether an account named name exists (disabled or not).
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)`, name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("account lookup: %w", err)
	}
	return ok, nil
}

// CheckLogin returns the enabled account whose password matches, or
// ErrBadCredentials. Unknown names cost the same hashing time as known
// ones, so timing does not tell which names exist. reason says why a
// login failed, for the audit log only.
func (s *Store) CheckLogin(ctx context.Context, name, password string) (u User, reason string, err error) {
	var hash string
	row := s.pool.QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE name = $1`, name)
	err = row.Scan(&u.ID, &u.Name, &u.Role, &u.Wards, &u.Disabled, &u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt, &hash)
	known := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return User{}, "", fmt.Errorf("login lookup: %w", err)
	}
	if !known {
		hash = s.dummy
	}
	ok, err := s.verify(ctx, hash, password)
	if err != nil && !errors.Is(err, ErrBadHash) {
		return User{}, "", err
	}
	switch {
	case !known:
		return User{}, "unknown_user", ErrBadCredentials
	case !ok:
		return User{}, "wrong_password", ErrBadCredentials
	case u.Disabled:
		return User{}, "disabled", ErrBadCredentials
	}
	if u.Wards == nil {
		u.Wards = []string{}
	}
	return u, "", nil
}

// Session is a browser or CLI sign-in.
type Session struct {
	Token     string // shown once; only its hash is stored
	ExpiresAt time.Time
}

func newToken(prefix string) (token string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewSession signs u in for ttl.
func (s *Store) NewSession(ctx context.Context, u User, ttl time.Duration, remote, userAgent string) (Session, error) {
	token, h := newToken(sessionPrefix)
	var exp time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO sessions (token_hash, user_id, expires_at, remote_addr, user_agent)
			VALUES ($1, $2, now() + $3::interval, $4, $5) RETURNING expires_at`,
			h, u.ID, ttl.String(), api.ClipN(remote, 64), api.ClipN(userAgent, 256)).Scan(&exp); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE users SET last_login_at = now() WHERE id = $1`, u.ID)
		return err
	})
	if err != nil {
		return Session{}, fmt.Errorf("new session: %w", err)
	}
	return Session{Token: token, ExpiresAt: exp}, nil
}

// Lookup returns the caller a session or API token stands for, or
// api.ErrUnauthenticated. Role and wards are read from the account on
// every call, so a change or a disable takes effect at once.
func (s *Store) Lookup(ctx context.Context, token string) (api.Caller, error) {
	switch {
	case len(token) > 128:
		return api.Caller{}, api.ErrUnauthenticated
	case strings.HasPrefix(token, sessionPrefix):
		var c api.Caller
		err := s.pool.QueryRow(ctx, `SELECT u.name, u.role, u.wards FROM sessions s JOIN users u ON u.id = s.user_id
			WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.disabled`,
			tokenHash(token)).Scan(&c.Name, &c.Role, &c.Wards)
		if errors.Is(err, pgx.ErrNoRows) {
			return api.Caller{}, api.ErrUnauthenticated
		}
		if err != nil {
			return api.Caller{}, fmt.Errorf("session lookup: %w", err)
		}
		return c, nil
	case strings.HasPrefix(token, tokenPrefix):
		var (
			c        api.Caller
			id       int64
			lastUsed *time.Time
		)
		err := s.pool.QueryRow(ctx, `SELECT id, name, role, wards, last_used_at FROM api_tokens
			WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
			tokenHash(token)).Scan(&id, &c.Name, &c.Role, &c.Wards, &lastUsed)
		if errors.Is(err, pgx.ErrNoRows) {
			return api.Caller{}, api.ErrUnauthenticated
		}
		if err != nil {
			return api.Caller{}, fmt.Errorf("token lookup: %w", err)
		}
		c.Name = "token:" + c.Name
		// last_used_at is written at most every 5 minutes per token.
		if lastUsed == nil || time.Since(*lastUsed) > 5*time.Minute {
			s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, id)
		}
		return c, nil
	}
	return api.Caller{}, api.ErrUnauthenticated
}

// RevokeSession ends one session; revoking an unknown or ended one is not
// an error.
func (s *Store) RevokeSession(ctx context.Context, token string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL`, tokenHash(token))
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RevokeUserSessions ends every session of the account and says how many.
func (s *Store) RevokeUserSessions(ctx context.Context, name string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = now()
		WHERE user_id = (SELECT id FROM users WHERE name = $1) AND revoked_at IS NULL AND expires_at > now()`, name)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteOldSessions removes sessions that ended before cutoff.
func (s *Store) DeleteOldSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("delete old sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// APIToken is a machine client's credential.
type APIToken struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Wards      []string   `json:"wards"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Token is the secret, set only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

const tokenCols = `id, name, role, wards, created_by, created_at, expires_at, revoked_at, last_used_at`

func scanToken(row pgx.Row) (APIToken, error) {
	var t APIToken
	err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Wards, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrTokenNotFound
	}
	if t.Wards == nil {
		t.Wards = []string{}
	}
	return t, err
}

// MaxTokenLifetime bounds an API token's expires_at.
const MaxTokenLifetime = 3 * 366 * 24 * time.Hour

// NewAPIToken is what CreateToken needs.
type NewAPIToken struct {
	Name      string
	Role      string
	Wards     []string
	ExpiresAt *time.Time
	CreatedBy string
}

// CreateToken issues an API token; the returned APIToken.Token is the only
// copy of the secret. Admin tokens are not issued: a leaked machine
// credential must not be able to create accounts.
func (s *Store) CreateToken(ctx context.Context, n NewAPIToken) (APIToken, error) {
	var err error
	if n.Name, err = NormalizeName("name", n.Name); err != nil {
		return APIToken{}, err
	}
	if !ValidRole(n.Role) || n.Role == RoleAdmin {
		return APIToken{}, &InputError{Name: "role", Problem: "one of operator, dispatcher, analyst (no admin tokens)"}
	}
	if n.Wards, err = NormalizeWards(n.Wards); err != nil {
		return APIToken{}, err
	}
	if n.ExpiresAt != nil {
		if until := time.Until(*n.ExpiresAt); until <= 0 || until > MaxTokenLifetime {
			return APIToken{}, &InputError{Name: "expires_at", Problem: "must be in the future and within 3 years"}
		}
	}
	secret, h := newToken(tokenPrefix)
	t, err := scanToken(s.pool.QueryRow(ctx, `INSERT INTO api_tokens (name, role, wards, token_hash, created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+tokenCols, n.Name, n.Role, n.Wards, h, n.CreatedBy, n.ExpiresAt))
	if isUnique(err) {
		return APIToken{}, ErrTokenExists
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("create token: %w", err)
	}
	t.Token = secret
	return t, nil
}

// Tokens lists API tokens, newest first, revoked ones included.
func (s *Store) Tokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens ORDER BY id DESC LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes an API token by id; ErrTokenNotFound if there is no
// active token with that id.
func (s *Store) RevokeToken(ctx context.Context, id int64) (APIToken, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = now()
		WHERE id = $1 AND revoked_at IS NULL RETURNING `+tokenCols, id))
	if err != nil && !errors.Is(err, ErrTokenNotFound) {
		return t, fmt.Errorf("revoke token: %w", err)
	}
	return t, err
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

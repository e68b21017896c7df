package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// DecodeJSON reads the request body into v strictly: Content-Type
// application/json, one JSON object, no unknown fields, no trailing data,
// the right types. An empty body leaves v as it is (actions such as
// acknowledge need none). Its errors are *Problem values safe to show
// (Fail writes them) and never echo more than a short piece of the input.
func DecodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return Problemf(http.StatusRequestEntityTooLarge, "too_large", "body over %d bytes", big.Limit)
		}
		return Problemf(http.StatusBadRequest, "bad_parameter", "body: cannot be read")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return ErrMediaType
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	return Problemf(http.StatusBadRequest, "bad_parameter", "%s", bodyProblem(err))
}

func bodyProblem(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "body: JSON ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("body: not valid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "body: want a JSON object"
		}
		return fmt.Sprintf("%s: want %s, got %s", Clip(typ.Field), jsonType(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + Clip(strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "body: " + Clip(err.Error())
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "struct", "map":
		return "an object"
	case "int", "int64", "int32", "int16", "int8", "uint", "uint64", "uint32", "uint16", "uint8":
		return "an integer"
	case "float64", "float32":
		return "a number"
	}
	return kind
}

// IfMatch reads an optional If-Match version (an ETag from SetETag, quoted
// or not, W/ tolerated): 0 and no error when absent.
func IfMatch(r *http.Request) (int64, error) {
	s := strings.TrimSpace(r.Header.Get("If-Match"))
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(s, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return 0, Problemf(http.StatusBadRequest, "bad_parameter", "If-Match: want the version from the ETag, a positive integer")
	}
	return v, nil
}

// SetETag sets the ETag of a versioned resource, which If-Match echoes.
func SetETag(w http.ResponseWriter, version int64) {
	w.Header().Set("ETag", `"`+strconv.FormatInt(version, 10)+`"`)
}

// Clip shortens outside input for an error message or a log line: at most
// 64 bytes, valid UTF-8.
func Clip(s string) string { return ClipN(s, 64) }

// ClipN is Clip with a chosen length.
func ClipN(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

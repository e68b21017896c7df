package api

import (
	"encoding/json"
	"net/http"
)

// JSON writes v as the response body.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// ErrorBody is the contract's error shape: {"error":{"code":..,"message":..}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error writes an error response. code is a stable machine-readable word
// (bad_parameter, not_found, version_conflict, ...); message is for people
// and must never carry internal error text such as SQL.
func Error(w http.ResponseWriter, status int, code, message string) {
	var b ErrorBody
	b.Error.Code = code
	b.Error.Message = message
	JSON(w, status, b)
}

// List is the contract's list shape.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

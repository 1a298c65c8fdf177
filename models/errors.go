// Package models holds switchboard's domain types and their stores, backed
// by GORM on SQLite (embedded default) or PostgreSQL.
package models

import (
	"errors"
	"fmt"
)

// Error codes, the "code" of every JSON error. middleware.WriteError maps
// each to one HTTP status; nothing else does.
const (
	ECONFLICT     = "conflict"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	EINTERNAL     = "internal"

	// Codes only the HTTP layer produces.
	EMETHOD      = "method_not_allowed"     // 405
	ETOOLARGE    = "too_large"              // 413
	EUNSUPPORTED = "unsupported_media_type" // 415
	ERATELIMITED = "rate_limited"           // 429
)

// Error is an application error whose Message is safe to show a client.
// Fields names the input fields that were wrong, for validation errors.
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted, client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID (or other code) error naming one field.
func FieldError(code, field, message string) *Error {
	return &Error{Code: code, Message: field + ": " + message, Fields: map[string]string{field: message}}
}

// ErrorCode returns the code of an *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

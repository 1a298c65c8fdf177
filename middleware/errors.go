package middleware

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"switchboard/models"
)

// statusOf maps every error code to its HTTP status (RFC 9110 §15).
var statusOf = map[string]int{
	models.EINVALID:      http.StatusBadRequest,
	models.EUNAUTHORIZED: http.StatusUnauthorized,
	models.EFORBIDDEN:    http.StatusForbidden,
	models.ENOTFOUND:     http.StatusNotFound,
	models.ECONFLICT:     http.StatusConflict,
	models.EMETHOD:       http.StatusMethodNotAllowed,
	models.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	models.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	models.ERATELIMITED:  http.StatusTooManyRequests,
	models.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorBody is every JSON error's shape:
// {"error":{"code":"not_found","message":"user not found","fields":{...}}}.
// (The rest_framework_jwt endpoints keep that library's own shapes.)
type ErrorBody struct {
	Error ErrorJSON `json:"error"`
}

// ErrorJSON is the inside of ErrorBody.
type ErrorJSON struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// errInternal is what a client sees of any error that is not a
// *models.Error: never the detail.
var errInternal = &models.Error{Code: models.EINTERNAL, Message: "internal error"}

// WriteError is the one place that turns an error into an HTTP response:
// a *models.Error gets its code's status and its client-safe message;
// anything else is a 500 "internal error", and the real error is attached
// to c so AccessLog logs it. It aborts the handler chain.
func WriteError(c *gin.Context, err error) {
	status, body := errorResponse(err)
	if status == http.StatusInternalServerError {
		_ = c.Error(err)
	}
	c.AbortWithStatusJSON(status, body)
}

// WriteHTTPError is WriteError for code outside gin (the WebSocket
// upgrader's refusal). Internal errors are the caller's to log.
func WriteHTTPError(w http.ResponseWriter, err error) {
	status, body := errorResponse(err)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func errorResponse(err error) (int, ErrorBody) {
	var e *models.Error
	if !errors.As(err, &e) {
		e = errInternal
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status, e = http.StatusInternalServerError, errInternal
	}
	return status, ErrorBody{ErrorJSON{Code: e.Code, Message: e.Message, Fields: e.Fields}}
}

package handlers

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"switchboard/models"
)

// Error codes beyond models' that only HTTP produces.
const (
	codeTooLarge    = "too_large"
	codeUnsupported = "unsupported_media_type"
	codeRateLimited = "rate_limited"
	codeMethod      = "method_not_allowed"
)

var statusOf = map[string]int{
	models.EINVALID:      http.StatusBadRequest,
	models.EUNAUTHORIZED: http.StatusUnauthorized,
	models.EFORBIDDEN:    http.StatusForbidden,
	models.ENOTFOUND:     http.StatusNotFound,
	models.ECONFLICT:     http.StatusConflict,
	codeMethod:           http.StatusMethodNotAllowed,
	codeTooLarge:         http.StatusRequestEntityTooLarge,
	codeUnsupported:      http.StatusUnsupportedMediaType,
	codeRateLimited:      http.StatusTooManyRequests,
	models.EINTERNAL:     http.StatusInternalServerError,
}

// errorBody is every error's shape:
// {"error":{"code":"not_found","message":"user not found","fields":{...}}}.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// writeError is the only place that maps an error to a status. Internal
// errors are logged and shown as "internal error", never in detail.
func writeError(c *gin.Context, logger *slog.Logger, err error) {
	var e *models.Error
	if !errors.As(err, &e) {
		logger.ErrorContext(c.Request.Context(), "internal error",
			"method", c.Request.Method, "path", c.FullPath(), "err", err)
		e = &models.Error{Code: models.EINTERNAL, Message: "internal error"}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	c.AbortWithStatusJSON(status, errorBody{errorJSON{Code: e.Code, Message: e.Message, Fields: e.Fields}})
}

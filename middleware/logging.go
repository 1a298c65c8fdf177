package middleware

import (
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// AccessLog logs one structured line per request, at error level with the
// error when WriteError answered a 500. The query string is
// logged with token= values replaced by REDACTED, and no header is logged,
// so a JWT or API key never reaches a log line.
func AccessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelInfo
		err := c.Errors.Last()
		if err != nil {
			level = slog.LevelError
		}
		// At LOG_LEVEL=warn an ordinary request builds no line at all.
		if !logger.Enabled(c.Request.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", Method(c.Request)),
			slog.String("path", c.Request.URL.Path),
			slog.String("query", RedactQuery(c.Request.URL.RawQuery)),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", c.ClientIP()),
		}
		// WriteError attaches internal errors (never shown to the client).
		if err != nil {
			attrs = append(attrs, slog.String("err", err.Err.Error()))
		}
		logger.LogAttrs(c.Request.Context(), level, "request", attrs...)
	}
}

// secretParams are query parameters whose values are never logged.
var secretParams = map[string]bool{"token": true, "access_token": true, "api_key": true, "password": true, "jwt": true}

// RedactQuery returns raw with the values of secret parameters replaced by
// REDACTED. It keeps the rest as sent, and works on unparsable input too.
func RedactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if secretParams[strings.ToLower(name)] {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

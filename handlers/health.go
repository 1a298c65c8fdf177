package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// handleHealthz is GET /healthz: the process is alive.
func handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
}

// handleReadyz is GET /readyz: every dependency (database; Redis when
// configured) answers within a second → 200, else 503 naming what is down.
func handleReadyz(checks map[string]Check) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		status, code := "ok", http.StatusOK
		results := gin.H{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status, code = "degraded", http.StatusServiceUnavailable
				results[name] = "down"
			} else {
				results[name] = "ok"
			}
		}
		c.JSON(code, gin.H{"status": status, "checks": results})
	}
}

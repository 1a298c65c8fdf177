package middleware

import (
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"switchboard/models"
)

// RateLimit allows each client IP rps requests per second with burst, and
// answers the rest with 429. It guards the login endpoints against
// password guessing. Idle entries are forgotten after ten minutes. rps 0
// (or less) disables the limit.
func RateLimit(rps float64, burst int) gin.HandlerFunc {
	if rps <= 0 {
		return func(c *gin.Context) { c.Next() }
	}
	type entry struct {
		lim  *rate.Limiter
		seen time.Time
	}
	var (
		mu      sync.Mutex
		clients = map[string]*entry{}
		sweep   = time.Now()
	)
	return func(c *gin.Context) {
		now := time.Now()
		ip := c.ClientIP()
		mu.Lock()
		if now.Sub(sweep) > time.Minute {
			for k, e := range clients {
				if now.Sub(e.seen) > 10*time.Minute {
					delete(clients, k)
				}
			}
			sweep = now
		}
		e := clients[ip]
		if e == nil {
			e = &entry{lim: rate.NewLimiter(rate.Limit(rps), burst)}
			clients[ip] = e
		}
		e.seen = now
		ok := e.lim.AllowN(now, 1)
		mu.Unlock()
		if !ok {
			c.Header("Retry-After", "1")
			WriteError(c, models.Errorf(models.ERATELIMITED, "too many requests, slow down"))
			return
		}
		c.Next()
	}
}

package middleware

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
)

// CORSMaxAge is how long a browser may cache a preflight answer (Chromium
// caps it at two hours).
const CORSMaxAge = 2 * time.Hour

// CORS lets pages on the allowed origins (ALLOWED_ORIGINS, the same list
// that may open WebSockets) call the REST API, with gin-contrib/cors:
// their preflights get 204 with the origin, the API's methods, the
// Authorization and Content-Type headers and CORSMaxAge; their responses
// get Access-Control-Allow-Origin and Vary: Origin. Credentials (cookies)
// are never allowed: the API takes its token in Authorization.
//
// Any other origin is left alone: no CORS headers, and the request is
// served exactly as without CORS (gin-contrib/cors would answer it 403
// itself, outside WriteError). Origins compare as the upgrader's do:
// case-insensitively, ignoring a trailing slash in the list. An empty list
// returns nil: same-host pages need no CORS.
func CORS(allowed []string) gin.HandlerFunc {
	allow := map[string]bool{}
	for _, o := range allowed {
		allow[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	if len(allow) == 0 {
		return nil
	}
	isAllowed := func(origin string) bool { return allow[strings.ToLower(origin)] }
	apply := cors.New(cors.Config{
		AllowOriginFunc:  isAllowed,
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{"Authorization", "Content-Type"},
		AllowCredentials: false,
		MaxAge:           CORSMaxAge,
	})
	return func(c *gin.Context) {
		// Every answer depends on Origin once CORS is on, so shared
		// caches must key on it whatever the origin was.
		c.Writer.Header().Add("Vary", "Origin")
		if isAllowed(c.GetHeader("Origin")) {
			apply(c)
		}
	}
}

package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gin-gonic/gin"

	"switchboard/models"
)

// APIKey accepts `Authorization: Api-Key <key>` for services that publish
// (PUBLISH_API_KEY). A matching key marks the request as a service, which
// RequireUser then lets through; a wrong key is 401; any other header is
// left to RequireUser. With no key configured, Api-Key is always refused.
func APIKey(key string) gin.HandlerFunc {
	want := sha256.Sum256([]byte(key))
	return func(c *gin.Context) {
		scheme, got, ok := strings.Cut(c.GetHeader("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Api-Key") {
			c.Next()
			return
		}
		// Compare digests so the comparison takes the same time whatever
		// the lengths.
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if key == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			WriteError(c, models.Errorf(models.EUNAUTHORIZED, "invalid api key"))
			return
		}
		c.Set(ContextAPIKey, true)
		c.Next()
	}
}

// IsService reports whether the request was authenticated by APIKey.
func IsService(c *gin.Context) bool { return c.GetBool(ContextAPIKey) }

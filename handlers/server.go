// Package handlers is switchboard's HTTP surface: REST, the
// rest_framework_jwt-compatible token endpoints and the WebSocket routes.
package handlers

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// Deps is everything the handlers use; run builds it.
type Deps struct {
	Logger *slog.Logger
	Users  *models.UserStore
	Status *models.StatusStore
	// History is group history (the hub's, WithHistory); nil when off.
	History  *models.HistoryStore
	Auth     *middleware.Auth
	Hub      *ws.Hub
	Presence ws.Presence
	// ClientConfig is every socket's limits (shared, never written).
	ClientConfig   ws.ClientConfig
	AllowedOrigins []string
	// PresenceEvents sends join/leave frames (PRESENCE_EVENTS); presence
	// lists work either way.
	PresenceEvents bool
	// PresenceEventsMax and PresenceCountInterval: above this many users
	// online a group's members get a count at most once per interval
	// instead of join/leave frames (ws.PresenceFeed; zero: the defaults).
	PresenceEventsMax     int
	PresenceCountInterval time.Duration
	// PublishAPIKey lets services publish with `Authorization: Api-Key`;
	// empty refuses every API key.
	PublishAPIKey string
	// Checks are the dependencies /readyz reports on.
	Checks map[string]Check
	// Metrics is served at /metrics; nil serves none.
	Metrics *Metrics
	// LoginRate and LoginBurst limit token requests per client IP (0
	// disables the limit; cmd/switchboard/config.go holds the defaults).
	LoginRate  float64
	LoginBurst int
	// Page is the embedded chat page served at /; nil serves none.
	Page fs.FS
	// Now is the clock for frame timestamps; time.Now when nil.
	Now func() time.Time
}

// NewServer returns the HTTP handler with every route and middleware.
func NewServer(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	// ClientIP (the login rate limit's key, the access log's remote) is
	// the peer address: gin trusts X-Forwarded-For from anyone by default,
	// which would let each request pick a fresh rate-limit bucket.
	_ = r.SetTrustedProxies(nil)
	r.Use(middleware.AccessLog(d.Logger), recovery(d.Logger), middleware.DrainUnreadBody())
	if cors := middleware.CORS(d.AllowedOrigins); cors != nil {
		r.Use(cors)
	}
	r.NoRoute(func(c *gin.Context) {
		middleware.WriteError(c, models.Errorf(models.ENOTFOUND, "no such endpoint"))
	})
	r.NoMethod(func(c *gin.Context) {
		// gin lists the routed methods; HeadAsGet serves HEAD wherever
		// GET is routed.
		allow := c.Writer.Header().Get("Allow")
		if methods := strings.Split(allow, ", "); slices.Contains(methods, http.MethodGet) && !slices.Contains(methods, http.MethodHead) {
			c.Header("Allow", allow+", "+http.MethodHead)
		}
		middleware.WriteError(c, models.Errorf(models.EMETHOD, "method not allowed"))
	})
	if d.Users != nil && d.Hub != nil {
		// A revocation the hub hears, from this process or another, drops
		// the user from the store's cache of recent lookups (GetRecent).
		d.Hub.OnRevoke(d.Users.Forget)
	}
	addRoutes(r, d)
	return growStackForUpgrades(middleware.HeadAsGet(r))
}

// recovery turns a panic into a logged 500 with the standard error shape.
func recovery(logger *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		middleware.WriteError(c, fmt.Errorf("panic: %v", err))
	})
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

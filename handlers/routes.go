package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/web"
	"switchboard/ws"
)

// addRoutes is the one place every route is listed.
func addRoutes(r *gin.Engine, d Deps) {
	wsd := &wsDeps{
		logger:   d.Logger,
		upgrader: newUpgrader(d.Logger, d.AllowedOrigins),
		auth:     d.Auth,
		hub:      d.Hub,
		history:  d.History,
		presence: d.Presence,
		cfg:      d.ClientConfig,
		now:      d.Now,
	}
	if d.PresenceEvents {
		wsd.feed = ws.NewPresenceFeed(d.Hub, d.Presence, ws.PresenceConfig{
			EventsMax:     d.PresenceEventsMax,
			CountInterval: d.PresenceCountInterval,
		}, d.Logger)
	}
	user := d.Auth.RequireUser()
	staff := requireStaff(d.Logger)
	login := middleware.RateLimit(d.LoginRate, d.LoginBurst)

	// rest_framework_jwt-compatible token endpoints.
	both(r, http.MethodPost, "/api-token-auth", login, handleObtainToken(d.Logger, d.Users, d.Auth))
	both(r, http.MethodPost, "/api-token-refresh", login, handleRefreshToken(d.Logger, d.Auth))
	both(r, http.MethodPost, "/api-token-verify", login, handleVerifyToken(d.Logger, d.Auth))
	both(r, http.MethodPost, "/api-token-logout", handleLogoutToken(d.Auth)) // JWT_AUTH_COOKIE

	// Users.
	both(r, http.MethodPost, "/api/users", login, handleCreateUser(d.Logger, d.Users))
	both(r, http.MethodGet, "/api/users", user, staff, handleListUsers(d.Logger, d.Users))
	both(r, http.MethodGet, "/api/users/me", user, handleMe())
	both(r, http.MethodPost, "/api/users/me/logout-all", user, handleLogoutAll(d.Users, d.Hub))
	both(r, http.MethodPost, "/api/users/me/password", user, handleChangePassword(d.Users, d.Auth, d.Hub))
	both(r, http.MethodGet, "/api/users/:id", user, staff, handleGetUser(d.Logger, d.Users))
	both(r, http.MethodPatch, "/api/users/:id", user, staff, handleUpdateUser(d.Logger, d.Users, d.Hub))
	both(r, http.MethodDelete, "/api/users/:id", user, staff, handleDeleteUser(d.Logger, d.Users, d.Hub))

	// Groups, live status and presence: staff JWTs or the service API key.
	service := middleware.APIKey(d.PublishAPIKey)
	both(r, http.MethodPost, "/api/groups/:group/messages", service, user, staff, handlePublish(d.Logger, d.Hub, d.Metrics, d.Now))
	both(r, http.MethodGet, "/api/groups/:group/presence", service, user, handlePresence(d.Logger, d.Presence))
	both(r, http.MethodGet, "/api/groups/:group/history", service, user, handleHistory(d.History))
	both(r, http.MethodPut, "/api/status/:key", service, user, staff, handlePutStatus(d.Logger, d.Status, d.Hub, d.Metrics))
	both(r, http.MethodGet, "/api/status/:key", service, user, handleGetStatus(d.Logger, d.Status))

	// Process-to-process (the CLI without Redis).
	r.POST("/api/internal/revoke", handleInternalRevoke(d.Logger, d.Auth, d.Hub))

	// Probes.
	r.GET("/healthz", handleHealthz())
	r.GET("/readyz", handleReadyz(d.Checks))
	both(r, http.MethodGet, "/api/schema", handleSchema()) // openapi.yaml
	if d.Metrics != nil {
		r.GET("/metrics", gin.WrapH(d.Metrics.Handler()))
	}

	// WebSockets.
	both(r, http.MethodGet, "/ws/echo", handleEcho(wsd))
	both(r, http.MethodGet, "/ws/chat", handleChat(wsd))
	both(r, http.MethodGet, "/ws/status/:key", handleStatusSocket(wsd, d.Status))

	// The page: every file of its folder at its own path, index.html also
	// at /, each with its Content-Type (.js as text/javascript).
	if d.Page != nil {
		site, err := web.NewSite(d.Page)
		if err != nil {
			panic(err) // the page is embedded in the binary: unreadable is a build bug
		}
		page := gin.WrapH(site)
		for _, p := range site.Paths() {
			r.GET(p, page)
			r.HEAD(p, page)
		}
	}
}

// both registers path with and without its trailing slash, so Django-style
// URLs (/api-token-auth/) and bare ones work alike, without redirects that
// would turn a POST into a GET.
func both(r *gin.Engine, method, path string, h ...gin.HandlerFunc) {
	r.Handle(method, path, h...)
	r.Handle(method, path+"/", h...)
}

package handlers

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
)

// handleInternalRevoke is POST /api/internal/revoke, called by
// `switchboard setactive U false` when there is no Redis to carry the
// revocation: the CLI signs a short-lived "revoke" service token with the
// shared JWT secret, so only a holder of the secret can call it.
func handleInternalRevoke(logger *slog.Logger, auth *middleware.Auth, revoker Revoker) gin.HandlerFunc {
	return func(c *gin.Context) {
		scheme, tok, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		if !strings.EqualFold(scheme, "JWT") && !strings.EqualFold(scheme, "Bearer") {
			writeError(c, logger, models.Errorf(models.EUNAUTHORIZED, middleware.ReasonTokenMissing))
			return
		}
		claims, err := auth.ParseService(strings.TrimSpace(tok), "revoke")
		if err != nil {
			writeError(c, logger, models.Errorf(models.EUNAUTHORIZED, "%s", err.Error()))
			return
		}
		id, ok := claims["revoke_user_id"].(float64)
		if !ok || id <= 0 || id != float64(int64(id)) {
			writeError(c, logger, models.Errorf(models.EINVALID, "revoke_user_id missing"))
			return
		}
		revoker.Revoke(int64(id), middleware.ReasonUserInactive)
		c.JSON(http.StatusOK, gin.H{"revoked": int64(id)})
	}
}

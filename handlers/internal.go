package handlers

import (
	"log/slog"
	"net/http"

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
		tok, ok := middleware.BearerToken(c.GetHeader("Authorization"))
		if !ok {
			middleware.WriteError(c, models.Errorf(models.EUNAUTHORIZED, middleware.ReasonTokenMissing))
			return
		}
		claims, err := auth.ParseService(tok, "revoke")
		if err != nil {
			middleware.WriteError(c, models.Errorf(models.EUNAUTHORIZED, "%s", err.Error()))
			return
		}
		if claims.Target <= 0 {
			middleware.WriteError(c, models.Errorf(models.EINVALID, "target_user_id missing"))
			return
		}
		revoker.Revoke(claims.Target, middleware.ReasonUserInactive)
		c.JSON(http.StatusOK, gin.H{"revoked": claims.Target})
	}
}

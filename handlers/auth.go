package handlers

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
)

// The rest_framework_jwt endpoints answer in that library's shapes, not in
// errorBody, because Django-era front ends read them.
const msgBadCredentials = "Unable to log in with provided credentials."

func drfErrors(c *gin.Context, messages ...string) {
	c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"non_field_errors": messages})
}

// requiredFields reports DRF's "This field is required." for each missing
// or empty field, and whether all were present.
func requiredFields(c *gin.Context, in map[string]string, names ...string) bool {
	missing := gin.H{}
	for _, n := range names {
		if in[n] == "" {
			missing[n] = []string{"This field is required."}
		}
	}
	if len(missing) > 0 {
		c.AbortWithStatusJSON(http.StatusBadRequest, missing)
		return false
	}
	return true
}

// handleObtainToken is POST /api-token-auth/ {username, password} →
// {"token"}; bad credentials and inactive users get the same 400.
func handleObtainToken(logger *slog.Logger, users *models.UserStore, auth *middleware.Auth) gin.HandlerFunc {
	return func(c *gin.Context) {
		in, err := decodeFields(c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if !requiredFields(c, in, "username", "password") {
			return
		}
		u, err := users.Authenticate(c.Request.Context(), in["username"], in["password"])
		if errors.Is(err, models.ErrBadCredentials) {
			drfErrors(c, msgBadCredentials)
			return
		} else if err != nil {
			middleware.WriteError(c, err)
			return
		}
		tok, err := auth.Mint(u)
		if err == nil {
			err = auth.SetTokenCookie(c, tok) // JWT_AUTH_COOKIE
		}
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"token": tok})
	}
}

// handleRefreshToken is POST /api-token-refresh/ {token} → {"token"} with
// the same orig_iat; refused once JWT_REFRESH_EXPIRATION has passed since
// orig_iat, or when the token has expired (as rest_framework_jwt does).
// With JWT_AUTH_COOKIE, a request without a token (and possibly without a
// body) refreshes the cookie's token (cookieTokenField), and the renewed
// token is set in the cookie either way.
func handleRefreshToken(logger *slog.Logger, auth *middleware.Auth) gin.HandlerFunc {
	return func(c *gin.Context) {
		in, err := cookieTokenField(c, auth)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if !requiredFields(c, in, "token") {
			return
		}
		tok, err := auth.Refresh(c.Request.Context(), in["token"])
		if err != nil {
			drfTokenError(c, logger, err)
			return
		}
		if err := auth.SetTokenCookie(c, tok); err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"token": tok})
	}
}

// handleVerifyToken is POST /api-token-verify/ {token} → {"token"} or 400.
func handleVerifyToken(logger *slog.Logger, auth *middleware.Auth) gin.HandlerFunc {
	return func(c *gin.Context) {
		in, err := decodeFields(c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if !requiredFields(c, in, "token") {
			return
		}
		if _, _, err := auth.Authenticate(c.Request.Context(), in["token"]); err != nil {
			drfTokenError(c, logger, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"token": in["token"]})
	}
}

// drfTokenError answers a refused token with rest_framework_jwt's messages.
func drfTokenError(c *gin.Context, logger *slog.Logger, err error) {
	var ae *middleware.AuthError
	if !errors.As(err, &ae) {
		middleware.WriteError(c, err)
		return
	}
	switch ae.Reason {
	case middleware.ReasonTokenExpired:
		drfErrors(c, "Signature has expired.")
	case middleware.ReasonRefreshExpired:
		drfErrors(c, "Refresh has expired.")
	case middleware.ReasonOrigIatRequired:
		drfErrors(c, "orig_iat field is required.")
	case middleware.ReasonTokenRevoked:
		drfErrors(c, "Token has been revoked.")
	case middleware.ReasonUserNotFound:
		drfErrors(c, "User doesn't exist.")
	case middleware.ReasonUserInactive:
		drfErrors(c, "User account is disabled.")
	default:
		drfErrors(c, "Error decoding signature.")
	}
}

package handlers

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/models"
)

// handleCreateUser is POST /api/users/ (registration, open to anyone).
func handleCreateUser(logger *slog.Logger, users *models.UserStore) gin.HandlerFunc {
	type request struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Email    string `json:"email"`
	}
	return func(c *gin.Context) {
		in, err := decodeOrForm[request](c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		u, err := users.Create(c.Request.Context(), models.NewUser{Username: in.Username, Password: in.Password, Email: in.Email})
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusCreated, u.JSON())
	}
}

// handleMe is GET /api/users/me.
func handleMe() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, middleware.User(c).JSON())
	}
}

// handleLogoutAll is POST /api/users/me/logout-all → 204: every token the
// caller holds is refused from now on (401 "token revoked"), and their
// sockets close with 4004 on every process within a second.
func handleLogoutAll(users *models.UserStore, revoker Revoker) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, err := users.RevokeTokens(c.Request.Context(), middleware.User(c).ID)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		revoker.RevokeTokens(u.ID, u.TokenVersion)
		c.Status(http.StatusNoContent)
	}
}

// handleChangePassword is POST /api/users/me/password {"old_password",
// "new_password"} → 200 {"token"}: the password changes, every other token
// is revoked as by logout-all, and the returned token is the one that
// stays valid.
func handleChangePassword(users *models.UserStore, auth *middleware.Auth, revoker Revoker) gin.HandlerFunc {
	type request struct {
		OldPassword string `json:"old_password"`
		NewPassword string `json:"new_password"`
	}
	return func(c *gin.Context) {
		in, err := decode[request](c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		u, err := users.ChangePassword(c.Request.Context(), middleware.User(c).ID, in.OldPassword, in.NewPassword)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		revoker.RevokeTokens(u.ID, u.TokenVersion)
		tok, err := auth.Mint(u)
		if err == nil {
			// The cookie's token was just revoked too: replace it.
			err = auth.SetTokenCookie(c, tok)
		}
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"token": tok})
	}
}

// requireStaff refuses non-staff users with 403; it runs after RequireUser.
// A service with the publish API key counts as staff.
func requireStaff(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if middleware.IsService(c) {
			c.Next()
			return
		}
		if u := middleware.User(c); u == nil || !u.IsStaff {
			middleware.WriteError(c, models.Errorf(models.EFORBIDDEN, "staff only"))
			return
		}
		c.Next()
	}
}

// handleListUsers is GET /api/users/?limit=&offset= (staff).
func handleListUsers(logger *slog.Logger, users *models.UserStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit, err1 := queryInt(c, "limit", 100, 1, 1000)
		offset, err2 := queryInt(c, "offset", 0, 0, 1<<31-1)
		if err1 != nil || err2 != nil {
			middleware.WriteError(c, models.Errorf(models.EINVALID, "limit must be 1–1000 and offset ≥ 0"))
			return
		}
		list, err := users.List(c.Request.Context(), limit, offset)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		out := make([]models.UserJSON, len(list))
		for i := range list {
			out[i] = list[i].JSON()
		}
		c.JSON(http.StatusOK, gin.H{"results": out, "limit": limit, "offset": offset})
	}
}

// Revoker closes a user's live sockets on every process; called after a
// user is deactivated or deleted.
type Revoker interface {
	Revoke(userID int64, reason string)
	// RevokeTokens closes the user's sockets whose token version is below
	// version (4004), on every process.
	RevokeTokens(userID, version int64)
}

// handleUpdateUser is PATCH /api/users/{id} (staff): is_active, is_staff,
// email. Deactivating closes the user's sockets everywhere.
func handleUpdateUser(logger *slog.Logger, users *models.UserStore, revoker Revoker) gin.HandlerFunc {
	type request struct {
		Email        *string `json:"email"`
		IsActive     *bool   `json:"is_active"`
		IsStaff      *bool   `json:"is_staff"`
		RevokeTokens bool    `json:"revoke_tokens"`
	}
	return func(c *gin.Context) {
		id, err := pathID(c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		in, err := decode[request](c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		u, err := users.Update(c.Request.Context(), id, models.UserPatch{Email: in.Email, IsActive: in.IsActive, IsStaff: in.IsStaff, RevokeTokens: in.RevokeTokens})
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if !u.IsActive {
			revoker.Revoke(u.ID, middleware.ReasonUserInactive)
		}
		if in.RevokeTokens {
			revoker.RevokeTokens(u.ID, u.TokenVersion)
		}
		c.JSON(http.StatusOK, u.JSON())
	}
}

// handleDeleteUser is DELETE /api/users/{id} (staff) → 204.
func handleDeleteUser(logger *slog.Logger, users *models.UserStore, revoker Revoker) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := pathID(c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		if err := users.Delete(c.Request.Context(), id); err != nil {
			middleware.WriteError(c, err)
			return
		}
		revoker.Revoke(id, middleware.ReasonUserInactive)
		c.Status(http.StatusNoContent)
	}
}

// handleGetUser is GET /api/users/{id} (staff).
func handleGetUser(logger *slog.Logger, users *models.UserStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := pathID(c)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		u, err := users.Get(c.Request.Context(), id)
		if err != nil {
			middleware.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, u.JSON())
	}
}

func pathID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, models.Errorf(models.ENOTFOUND, "user not found")
	}
	return id, nil
}

func queryInt(c *gin.Context, name string, def, min, max int) (int, error) {
	s, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, models.Errorf(models.EINVALID, "bad %s", name)
	}
	return n, nil
}

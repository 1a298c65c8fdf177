// Package middleware holds gin middleware: JWT authentication (REST and
// WebSocket share it), access logging and rate limiting.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jwt "github.com/appleboy/gin-jwt/v2"
	"github.com/gin-gonic/gin"
	gojwt "github.com/golang-jwt/jwt/v4"

	"switchboard/models"
)

// Reasons a token or its user is refused. They are the WebSocket close
// reasons (4001, 4003) and the REST error messages alike.
const (
	ReasonTokenMissing = "token missing"
	ReasonTokenExpired = "token expired"
	ReasonTokenInvalid = "token invalid"
	ReasonUserNotFound = "user not found"
	ReasonUserInactive = "user inactive"
)

// AuthError says why a request or socket was refused.
type AuthError struct {
	Reason string
}

func (e *AuthError) Error() string { return e.Reason }

// UserLookup loads users by id; *models.UserStore satisfies it.
type UserLookup interface {
	Get(ctx context.Context, id int64) (*models.User, error)
}

// Claims are the rest_framework_jwt claims switchboard signs and reads.
type Claims struct {
	UserID   int64
	Username string
	Email    string
	Exp      int64
	OrigIat  int64
}

// Context keys set by RequireUser and APIKey.
const (
	ContextUser     = "switchboard.user"
	ContextAPIKey   = "switchboard.api_key"
	contextReason   = "switchboard.auth_reason"
	contextInternal = "switchboard.auth_internal_error"
)

// Auth is switchboard's one JWT path: gin-jwt signs, parses and guards
// REST routes, and the WebSocket handlers call Authenticate, which uses the
// same parser and the same user check.
type Auth struct {
	mw         *jwt.GinJWTMiddleware
	users      UserLookup
	now        func() time.Time
	maxRefresh time.Duration
	onFailure  func(reason string)
}

// AuthConfig configures NewAuth.
type AuthConfig struct {
	Secret     []byte
	Expiration time.Duration // lifetime of one token (exp - now)
	MaxRefresh time.Duration // how long after orig_iat a token may be refreshed
	Now        func() time.Time
	// OnFailure, if set, is told the reason of every refused token or user
	// (for metrics).
	OnFailure func(reason string)
}

// NewAuth builds the gin-jwt middleware around users.
func NewAuth(cfg AuthConfig, users UserLookup) (*Auth, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Auth{users: users, now: cfg.Now, maxRefresh: cfg.MaxRefresh, onFailure: cfg.OnFailure}
	mw, err := jwt.New(&jwt.GinJWTMiddleware{
		Realm:            "switchboard",
		SigningAlgorithm: "HS256",
		Key:              cfg.Secret,
		Timeout:          cfg.Expiration,
		MaxRefresh:       cfg.MaxRefresh,
		TimeFunc:         cfg.Now,
		IdentityKey:      "user_id",
		TokenLookup:      "header:Authorization",
		TokenHeadName:    "Bearer",
		// Login is handled by handlers (rest_framework_jwt shapes), so the
		// authenticator is never reached through gin-jwt's LoginHandler.
		Authenticator: func(*gin.Context) (any, error) { return nil, jwt.ErrFailedAuthentication },
		PayloadFunc: func(data any) jwt.MapClaims {
			u := data.(*models.User)
			return jwt.MapClaims{"user_id": u.ID, "username": u.Username, "email": u.Email}
		},
		IdentityHandler: func(c *gin.Context) any {
			claims, err := claimsFrom(jwt.ExtractClaims(c))
			if err != nil {
				return nil
			}
			return claims.UserID
		},
		Authorizator: func(data any, c *gin.Context) bool {
			id, ok := data.(int64)
			if !ok {
				c.Set(contextReason, ReasonTokenInvalid)
				return false
			}
			u, err := a.activeUser(c.Request.Context(), id)
			var ae *AuthError
			if errors.As(err, &ae) {
				c.Set(contextReason, ae.Reason)
				return false
			} else if err != nil {
				c.Set(contextInternal, err) // the database failed, not the token
				return false
			}
			c.Set(ContextUser, u)
			return true
		},
		HTTPStatusMessageFunc: func(err error, c *gin.Context) string { return reasonFor(err) },
		Unauthorized: func(c *gin.Context, code int, message string) {
			if err, ok := c.Get(contextInternal); ok {
				// A 401 would tell the client to drop a good token, and the
				// driver's message is not for clients: 500, as writeError.
				_ = c.Error(err.(error))
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{
					"error": gin.H{"code": models.EINTERNAL, "message": "internal error"},
				})
				return
			}
			if r, ok := c.Get(contextReason); ok {
				message = r.(string)
			}
			a.failed(message)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{
				"error": gin.H{"code": models.EUNAUTHORIZED, "message": message},
			})
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jwt middleware: %w", err)
	}
	a.mw = mw
	return a, nil
}

func (a *Auth) failed(reason string) {
	if a.onFailure != nil {
		a.onFailure(reason)
	}
}

// RequireUser guards a REST route: the Authorization header must carry
// "JWT <token>" (rest_framework_jwt's prefix) or "Bearer <token>", the token
// must be valid and its user must exist and be active. The user is then in
// the context under ContextUser.
func (a *Auth) RequireUser() gin.HandlerFunc {
	guard := a.mw.MiddlewareFunc()
	return func(c *gin.Context) {
		if c.GetBool(ContextAPIKey) {
			c.Next() // a service authenticated by APIKey
			return
		}
		// gin-jwt knows one prefix; accept Django's too by rewriting it.
		h := c.Request.Header.Get("Authorization")
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "JWT") || ok && strings.EqualFold(scheme, "Bearer") {
			c.Request.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
		}
		guard(c)
	}
}

// User returns the authenticated user RequireUser stored in c.
func User(c *gin.Context) *models.User {
	u, _ := c.Get(ContextUser)
	user, _ := u.(*models.User)
	return user
}

// Mint signs a new token for u, valid for the configured expiration.
func (a *Auth) Mint(u *models.User) (string, error) {
	tok, _, err := a.mw.TokenGenerator(u)
	return tok, err
}

// Parse validates token (HS256 only, signature, exp) and returns its claims.
// A failure is an *AuthError with ReasonTokenMissing/Expired/Invalid.
func (a *Auth) Parse(token string) (Claims, error) {
	if token == "" {
		return Claims{}, &AuthError{ReasonTokenMissing}
	}
	t, err := a.mw.ParseTokenString(token)
	if err != nil {
		return Claims{}, &AuthError{reasonFor(err)}
	}
	mc, ok := t.Claims.(gojwt.MapClaims)
	if !ok || !t.Valid {
		return Claims{}, &AuthError{ReasonTokenInvalid}
	}
	c, err := claimsFrom(jwt.MapClaims(mc))
	if err != nil {
		return Claims{}, &AuthError{ReasonTokenInvalid}
	}
	if c.Exp < a.now().Unix() {
		return Claims{}, &AuthError{ReasonTokenExpired}
	}
	return c, nil
}

// Authenticate parses token and loads its active user: the WebSocket
// handlers' check, identical to RequireUser's.
func (a *Auth) Authenticate(ctx context.Context, token string) (*models.User, Claims, error) {
	claims, err := a.Parse(token)
	if err != nil {
		a.failed(err.(*AuthError).Reason)
		return nil, Claims{}, err
	}
	u, err := a.activeUser(ctx, claims.UserID)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			a.failed(ae.Reason)
		}
		return nil, claims, err
	}
	return u, claims, nil
}

// activeUser loads user id and refuses missing or inactive users. Checking
// the database on every request is what makes deactivation revoke tokens
// at once, before they expire.
func (a *Auth) activeUser(ctx context.Context, id int64) (*models.User, error) {
	u, err := a.users.Get(ctx, id)
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil, &AuthError{ReasonUserNotFound}
	} else if err != nil {
		return nil, err
	}
	if !u.IsActive {
		return nil, &AuthError{ReasonUserInactive}
	}
	return u, nil
}

// Refresh returns a new token for a valid token whose orig_iat is within
// the refresh window, keeping orig_iat (rest_framework_jwt's semantics;
// gin-jwt's own refresh would reset it).
func (a *Auth) Refresh(ctx context.Context, token string) (string, error) {
	claims, err := a.Parse(token)
	if err != nil {
		return "", err
	}
	if a.now().After(time.Unix(claims.OrigIat, 0).Add(a.maxRefresh)) {
		return "", &AuthError{"refresh has expired"}
	}
	u, err := a.activeUser(ctx, claims.UserID)
	if err != nil {
		return "", err
	}
	t := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{
		"user_id":  u.ID,
		"username": u.Username,
		"email":    u.Email,
		"exp":      a.now().Add(a.mw.Timeout).Unix(),
		"orig_iat": claims.OrigIat,
	})
	return t.SignedString(a.mw.Key)
}

func reasonFor(err error) string {
	var ve *gojwt.ValidationError
	switch {
	case errors.Is(err, jwt.ErrEmptyAuthHeader), errors.Is(err, jwt.ErrEmptyQueryToken):
		return ReasonTokenMissing
	case errors.Is(err, jwt.ErrExpiredToken):
		return ReasonTokenExpired
	case errors.As(err, &ve) && ve.Errors&gojwt.ValidationErrorExpired != 0 && ve.Errors&^gojwt.ValidationErrorExpired == 0:
		return ReasonTokenExpired
	}
	return ReasonTokenInvalid
}

func claimsFrom(m jwt.MapClaims) (Claims, error) {
	num := func(key string) (int64, bool) {
		f, ok := m[key].(float64)
		if !ok || f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	var c Claims
	var ok1, ok2, ok3 bool
	c.UserID, ok1 = num("user_id")
	c.Exp, ok2 = num("exp")
	c.OrigIat, ok3 = num("orig_iat")
	if !ok1 || !ok2 || !ok3 {
		return Claims{}, errors.New("missing or malformed claims")
	}
	c.Username, _ = m["username"].(string)
	c.Email, _ = m["email"].(string)
	return c, nil
}

// MintService signs a short-lived token for a process-to-process call
// (scope names it, e.g. "revoke"). It carries user_id 0, which no user
// has, so it can never pass RequireUser or a socket handshake.
func (a *Auth) MintService(scope string, extra map[string]any, ttl time.Duration) (string, error) {
	now := a.now()
	claims := gojwt.MapClaims{"scope": scope, "user_id": 0, "exp": now.Add(ttl).Unix(), "orig_iat": now.Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return gojwt.NewWithClaims(gojwt.SigningMethodHS256, claims).SignedString(a.mw.Key)
}

// ParseService validates a token from MintService for scope, with the same
// parser as every other token, and returns its claims.
func (a *Auth) ParseService(token, scope string) (map[string]any, error) {
	if _, err := a.Parse(token); err != nil {
		return nil, err
	}
	t, err := a.mw.ParseTokenString(token)
	if err != nil {
		return nil, &AuthError{ReasonTokenInvalid}
	}
	mc, _ := t.Claims.(gojwt.MapClaims)
	if s, _ := mc["scope"].(string); s != scope || mc["user_id"] != float64(0) {
		return nil, &AuthError{ReasonTokenInvalid}
	}
	return mc, nil
}

// Package middleware holds gin middleware: JWT authentication (REST and
// WebSocket share it), access logging and rate limiting.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	jwt "github.com/appleboy/gin-jwt/v2"
	"github.com/gin-gonic/gin"
	gojwt "github.com/golang-jwt/jwt/v4"

	"switchboard/internal/recent"
	"switchboard/models"
)

// AuthError says why a request or socket was refused.
type AuthError struct {
	Reason string
}

func (e *AuthError) Error() string { return e.Reason }

// UserLookup loads users by id; *models.UserStore satisfies it.
type UserLookup interface {
	Get(ctx context.Context, id int64) (*models.User, error)
	// GetRecent may answer from a lookup made within the last second
	// that no revocation or change of the user has followed (see
	// models.UserStore.GetRecent); socket handshakes use it.
	GetRecent(ctx context.Context, id int64) (*models.User, error)
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
	key        []byte
	users      UserLookup
	now        func() time.Time
	lifetime   time.Duration
	maxRefresh time.Duration
	onFailure  func(reason string)
	cookie     CookieConfig
	// parsed holds the claims of tokens Parse accepted in the last
	// second: a user's sockets reconnecting together carry one token, and
	// its decode (two JSON objects into maps, base64, HMAC) is a tenth of
	// a handshake's CPU. The claims are a function of the token's bytes
	// alone; exp and nbf are checked again on each use.
	parsed *recent.Cache[string, parsedToken]
}

// parsedToken is what Auth.parsed keeps of an accepted token.
type parsedToken struct {
	claims Claims
	nbf    time.Time // zero: no nbf claim
}

// Bounds of Auth.parsed: entries are trusted for parsedFor, and at most
// 2 × parsedMax are held (a few hundred bytes each).
const (
	parsedFor = time.Second
	parsedMax = 2048
)

// AuthConfig configures NewAuth.
type AuthConfig struct {
	Secret     []byte
	Expiration time.Duration // lifetime of one token (exp - now)
	MaxRefresh time.Duration // how long after orig_iat a token may be refreshed
	Now        func() time.Time
	// OnFailure, if set, is told the reason of every refused token or user
	// (for metrics).
	OnFailure func(reason string)
	// Cookie is the token cookie (cookie.go); its zero value is off.
	Cookie CookieConfig
}

// NewAuth builds the gin-jwt middleware around users.
func NewAuth(cfg AuthConfig, users UserLookup) (*Auth, error) {
	// A Django SECRET_KEY shorter than 32 characters is accepted while
	// migrating (run warns at start-up); an empty key never is.
	if len(cfg.Secret) == 0 {
		return nil, errors.New("JWT secret must not be empty")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Auth{users: users, now: cfg.Now, maxRefresh: cfg.MaxRefresh, lifetime: cfg.Expiration, key: cfg.Secret, onFailure: cfg.OnFailure, cookie: cfg.Cookie,
		parsed: recent.New[string, parsedToken](parsedFor, parsedMax)}
	mw, err := jwt.New(&jwt.GinJWTMiddleware{
		Realm:            "switchboard",
		SigningAlgorithm: "HS256",
		Key:              cfg.Secret,
		Timeout:          cfg.Expiration,
		MaxRefresh:       cfg.MaxRefresh,
		TimeFunc:         cfg.Now,
		// Claims are checked by claimsFrom alone, the way PyJWT reads them
		// (a NumericDate may have a fraction, RFC 7519 §2); golang-jwt's
		// own check would call a mistyped exp "expired".
		ParseOptions:  []gojwt.ParserOption{gojwt.WithValidMethods([]string{"HS256"}), gojwt.WithoutClaimsValidation()},
		IdentityKey:   "user_id",
		TokenLookup:   "header:Authorization",
		TokenHeadName: "Bearer",
		// Login is handled by handlers (rest_framework_jwt shapes), so the
		// authenticator is never reached through gin-jwt's LoginHandler.
		Authenticator: func(*gin.Context) (any, error) { return nil, jwt.ErrFailedAuthentication },
		IdentityHandler: func(c *gin.Context) any {
			claims, err := a.claimsFrom(jwt.ExtractClaims(c))
			if err != nil {
				c.Set(contextReason, err.(*AuthError).Reason)
				return nil
			}
			return claims
		},
		Authorizator: func(data any, c *gin.Context) bool {
			claims, ok := data.(Claims)
			if !ok || claims.Scope != "" {
				if _, set := c.Get(contextReason); !set {
					c.Set(contextReason, ReasonTokenInvalid)
				}
				return false
			}
			u, err := a.activeUser(c.Request.Context(), claims)
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
		Unauthorized: func(c *gin.Context, _ int, message string) {
			if err, ok := c.Get(contextInternal); ok {
				// A 401 would tell the client to drop a good token: the
				// database failed, so 500.
				WriteError(c, err.(error))
				return
			}
			if r, ok := c.Get(contextReason); ok {
				message = r.(string)
			}
			a.failed(message)
			WriteError(c, models.Errorf(models.EUNAUTHORIZED, "%s", message))
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
// "JWT <token>" (rest_framework_jwt's prefix) or "Bearer <token>" or, with
// no Authorization header and cookie authentication on, the token cookie
// must (an unsafe method then needs a same-host Origin or Referer: see
// cookieAuth); the token must be valid and its user must exist and be
// active. The user is then in the context under ContextUser.
func (a *Auth) RequireUser() gin.HandlerFunc {
	guard := a.mw.MiddlewareFunc()
	return func(c *gin.Context) {
		if c.GetBool(ContextAPIKey) {
			c.Next() // a service authenticated by APIKey
			return
		}
		// gin-jwt knows one prefix; accept Django's too by rewriting it.
		if tok, ok := BearerToken(c.Request.Header.Get("Authorization")); ok {
			c.Request.Header.Set("Authorization", "Bearer "+tok)
		} else if !a.cookieAuth(c) {
			return // refused: cross-site
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

// BearerToken returns the token of an Authorization header that carries
// "JWT <token>" (rest_framework_jwt's prefix) or "Bearer <token>" (RFC
// 6750), case-insensitively. It is the one place that reads the header.
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "JWT") && !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// Mint signs a new token for u: exp is now plus the configured
// expiration, orig_iat is now.
func (a *Auth) Mint(u *models.User) (string, error) {
	now := a.now()
	return SignToken(a.key, Claims{
		UserID: u.ID, Username: u.Username, Email: u.Email,
		Exp: now.Add(a.lifetime), OrigIat: now, Version: u.TokenVersion,
	})
}

// Parse validates token (HS256 only, signature, claims as claimsFrom reads
// them, exp) and returns its claims. A failure is an *AuthError with
// ReasonTokenMissing, ReasonTokenExpired or ReasonTokenInvalid.
func (a *Auth) Parse(token string) (Claims, error) {
	if token == "" {
		return Claims{}, &AuthError{ReasonTokenMissing}
	}
	began := time.Now()
	hit, gen, ok := a.parsed.Get(token, began)
	if ok {
		// claimsFrom's time checks, in its order.
		now := a.now()
		if !hit.claims.Exp.After(now) {
			return Claims{}, &AuthError{ReasonTokenExpired}
		}
		if hit.nbf.After(now) {
			return Claims{}, &AuthError{ReasonTokenInvalid}
		}
		return hit.claims, nil
	}
	// The one parser: gin-jwt's, which RequireUser uses too, with the
	// ParseOptions set in NewAuth.
	t, err := a.mw.ParseTokenString(token)
	if err != nil {
		return Claims{}, &AuthError{reasonFor(err)}
	}
	mc, ok := t.Claims.(gojwt.MapClaims)
	if !ok || !t.Valid {
		return Claims{}, &AuthError{ReasonTokenInvalid}
	}
	c, err := a.claimsFrom(jwt.MapClaims(mc))
	if err != nil {
		return Claims{}, err
	}
	p := parsedToken{claims: c}
	if nbf, ok := mc["nbf"].(float64); ok {
		p.nbf = numericDate(nbf)
	}
	a.parsed.Put(token, p, began, gen)
	return c, nil
}

// Authenticate parses a user token and loads its active user: the same
// check as RequireUser's, for a token given in a body.
func (a *Auth) Authenticate(ctx context.Context, token string) (*models.User, Claims, error) {
	return a.authenticate(ctx, token, a.users.Get)
}

// AuthenticateSocket is Authenticate for a WebSocket handshake or an
// in-band auth or refresh frame: the user may come from a lookup of the
// last second (UserLookup.GetRecent), so a user's sockets connecting
// together cost one query. A revocation still reaches the socket: the hub
// drops the cached user before it closes the user's sockets, and
// Identify closes any socket whose check began before the revocation.
func (a *Auth) AuthenticateSocket(ctx context.Context, token string) (*models.User, Claims, error) {
	return a.authenticate(ctx, token, a.users.GetRecent)
}

func (a *Auth) authenticate(ctx context.Context, token string, get func(context.Context, int64) (*models.User, error)) (*models.User, Claims, error) {
	claims, err := a.Parse(token)
	if err == nil && claims.Scope != "" {
		err = &AuthError{ReasonTokenInvalid} // a service token is no user's
	}
	if err != nil {
		a.failed(err.(*AuthError).Reason)
		return nil, Claims{}, err
	}
	u, err := activeUser(ctx, get, claims)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			a.failed(ae.Reason)
		}
		return nil, claims, err
	}
	return u, claims, nil
}

// activeUser loads the token's user and refuses missing or inactive users
// and revoked tokens (a token version below the user's). Checking the
// database on every request is what makes deactivation and revocation
// take effect at once, before tokens expire; the version rides on the same
// lookup, so revocation costs no extra round trip. (Sockets may take a
// lookup of the last second instead: AuthenticateSocket.)
func (a *Auth) activeUser(ctx context.Context, claims Claims) (*models.User, error) {
	return activeUser(ctx, a.users.Get, claims)
}

func activeUser(ctx context.Context, get func(context.Context, int64) (*models.User, error), claims Claims) (*models.User, error) {
	u, err := get(ctx, claims.UserID)
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil, &AuthError{ReasonUserNotFound}
	} else if err != nil {
		return nil, err
	}
	if !u.IsActive {
		return nil, &AuthError{ReasonUserInactive}
	}
	if claims.Version < u.TokenVersion {
		return nil, &AuthError{ReasonTokenRevoked}
	}
	return u, nil
}

// Refresh returns a new token for a valid token whose orig_iat is within
// the refresh window, keeping orig_iat (rest_framework_jwt's semantics;
// gin-jwt's own refresh would reset it). A token without orig_iat is
// refused with ReasonOrigIatRequired, as rest_framework_jwt refuses it.
func (a *Auth) Refresh(ctx context.Context, token string) (string, error) {
	claims, err := a.Parse(token)
	if err != nil {
		return "", err
	}
	if claims.Scope != "" {
		return "", &AuthError{ReasonTokenInvalid}
	}
	if claims.OrigIat.IsZero() {
		return "", &AuthError{ReasonOrigIatRequired}
	}
	if a.now().After(claims.OrigIat.Add(a.maxRefresh)) {
		return "", &AuthError{ReasonRefreshExpired}
	}
	u, err := a.activeUser(ctx, claims)
	if err != nil {
		return "", err
	}
	return SignToken(a.key, Claims{
		UserID: u.ID, Username: u.Username, Email: u.Email,
		Exp: a.now().Add(a.lifetime), OrigIat: claims.OrigIat, Version: u.TokenVersion,
	})
}

func reasonFor(err error) string {
	switch {
	case errors.Is(err, jwt.ErrEmptyAuthHeader), errors.Is(err, jwt.ErrEmptyQueryToken):
		return ReasonTokenMissing
	case errors.Is(err, jwt.ErrExpiredToken):
		return ReasonTokenExpired
	}
	return ReasonTokenInvalid
}

// MintService signs a short-lived token for a process-to-process call:
// scope names what it may do (e.g. "revoke") and target the user it acts
// on. It carries user_id 0, which no user has, and a scope, so it can
// never pass RequireUser or a socket handshake.
func (a *Auth) MintService(scope string, target int64, ttl time.Duration) (string, error) {
	now := a.now()
	return SignToken(a.key, Claims{Scope: scope, Target: target, Exp: now.Add(ttl), OrigIat: now})
}

// ParseService validates a token from MintService for scope, with the same
// parser as every other token, and returns its claims.
func (a *Auth) ParseService(token, scope string) (Claims, error) {
	c, err := a.Parse(token)
	if err != nil {
		return Claims{}, err
	}
	if c.Scope != scope || c.UserID != 0 {
		return Claims{}, &AuthError{ReasonTokenInvalid}
	}
	return c, nil
}

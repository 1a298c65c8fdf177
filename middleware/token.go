package middleware

import (
	"math"
	"time"

	jwt "github.com/appleboy/gin-jwt/v2"
	gojwt "github.com/golang-jwt/jwt/v4"
)

// Reasons a token or its user is refused. They are the WebSocket close
// reasons (4001, 4003) and the REST error messages alike.
const (
	ReasonTokenMissing = "token missing"
	ReasonTokenExpired = "token expired"
	ReasonTokenInvalid = "token invalid"
	ReasonUserNotFound = "user not found"
	ReasonUserInactive = "user inactive"
	// ReasonTokenRevoked: the token was issued before the user's last
	// "log out everywhere", password change or staff revocation (REST 401,
	// close 4004: log in again rather than refresh).
	ReasonTokenRevoked = "token revoked"

	// Refresh only (answered in rest_framework_jwt's words by handlers).
	ReasonRefreshExpired  = "refresh has expired"
	ReasonOrigIatRequired = "orig_iat field is required"
)

// Claims are the claims switchboard signs and reads: rest_framework_jwt's
// payload, plus two for process-to-process service tokens.
type Claims struct {
	UserID   int64  // "user_id"; 0 only in service tokens
	Username string // "username"
	Email    string // "email"
	// Exp is "exp", a NumericDate (RFC 7519 §2: seconds since the epoch,
	// a fraction allowed, as PyJWT writes and reads it).
	Exp time.Time
	// OrigIat is "orig_iat", the first token's issue time, kept across
	// refreshes. Zero when absent: rest_framework_jwt only adds it with
	// JWT_ALLOW_REFRESH, which is off by default.
	OrigIat time.Time
	// Version is "token_version", the user's token version when the token
	// was first issued (absent: 0, as in every Django-minted token).
	Version int64
	Scope   string // "scope": set only in service tokens (MintService)
	Target  int64  // "target_user_id": the user a service token acts on
}

// SignToken is the one function that signs switchboard tokens: HS256 with
// secret over c. Whole seconds are written for exp and orig_iat, as
// rest_framework_jwt does; empty optional claims are left out.
func SignToken(secret []byte, c Claims) (string, error) {
	m := gojwt.MapClaims{"user_id": c.UserID, "exp": c.Exp.Unix()}
	if c.Username != "" || c.Scope == "" {
		m["username"], m["email"] = c.Username, c.Email
	}
	if !c.OrigIat.IsZero() {
		m["orig_iat"] = c.OrigIat.Unix()
	}
	if c.Scope != "" {
		m["scope"], m["target_user_id"] = c.Scope, c.Target
	} else {
		m["token_version"] = c.Version
	}
	return gojwt.NewWithClaims(gojwt.SigningMethodHS256, m).SignedString(secret)
}

// claimsFrom reads claims as PyJWT would accept them: numbers may be
// integers or not (user_id must be a whole number), exp is required and
// must be in the future (expired when exp <= now, PyJWT's rule), nbf, when
// present, must have passed, and a claim of the wrong JSON type makes the
// token invalid, never expired.
func (a *Auth) claimsFrom(m jwt.MapClaims) (Claims, error) {
	invalid := &AuthError{ReasonTokenInvalid}
	num := func(key string, required bool) (float64, bool) {
		v, present := m[key]
		if !present {
			return 0, !required
		}
		f, ok := v.(float64)
		return f, ok && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	whole := func(key string) (int64, bool) {
		f, ok := num(key, false)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	str := func(key string) (string, bool) {
		v, present := m[key]
		if !present {
			return "", true
		}
		s, ok := v.(string)
		return s, ok
	}
	var c Claims
	var ok [10]bool
	var exp, origIat, nbf float64
	c.UserID, ok[0] = whole("user_id")
	exp, ok[1] = num("exp", true)
	origIat, ok[2] = num("orig_iat", false)
	nbf, ok[3] = num("nbf", false)
	_, ok[4] = num("iat", false) // PyJWT requires a number too
	c.Username, ok[5] = str("username")
	c.Email, ok[6] = str("email")
	c.Scope, ok[7] = str("scope")
	c.Target, ok[8] = whole("target_user_id")
	c.Version, ok[9] = whole("token_version")
	for _, good := range ok {
		if !good {
			return Claims{}, invalid
		}
	}
	if _, has := m["user_id"]; !has || c.UserID < 0 || c.UserID == 0 && c.Scope == "" {
		return Claims{}, invalid
	}
	c.Exp = numericDate(exp)
	if _, has := m["orig_iat"]; has {
		c.OrigIat = numericDate(origIat)
	}
	now := a.now()
	if !c.Exp.After(now) {
		return Claims{}, &AuthError{ReasonTokenExpired}
	}
	if _, has := m["nbf"]; has && numericDate(nbf).After(now) {
		return Claims{}, invalid
	}
	return c, nil
}

// numericDate converts a NumericDate (RFC 7519 §2) to a time, keeping its
// fraction to the microsecond.
func numericDate(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3)
}

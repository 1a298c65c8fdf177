package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v4"

	"switchboard/handlers"
	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
)

const badCredentials = "Unable to log in with provided credentials."

// isBadCredentials reports whether body is rest_framework_jwt's
// {"non_field_errors": ["Unable to log in with provided credentials."]}.
func isBadCredentials(body map[string]any) bool {
	return nonFieldError(body) == badCredentials && len(body) == 1
}

// nonFieldError returns the single message of a {"non_field_errors": [msg]}
// body, or "".
func nonFieldError(body map[string]any) string {
	l, _ := body["non_field_errors"].([]any)
	if len(l) != 1 {
		return ""
	}
	s, _ := l[0].(string)
	return s
}

func TestObtainToken(t *testing.T) {
	const (
		js   = "application/json"
		form = "application/x-www-form-urlencoded"
	)
	long72 := strings.Repeat("p", 70) + "72"
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
		wantErr     string   // non_field_errors message, for 400
		wantMissing []string // fields reported "This field is required."
	}{
		{"json", js, `{"username":"alice","password":"password123"}`, 200, "", nil},
		{"json with charset", js + "; charset=utf-8", `{"username":"alice","password":"password123"}`, 200, "", nil},
		{"form", form, "username=alice&password=password123", 200, "", nil},
		{"form, unicode user", form, "username=" + url.QueryEscape("éva") + "&password=password123", 200, "", nil},
		{"extra fields ignored", js, `{"username":"alice","password":"password123","remember":true}`, 200, "", nil},

		{"bad password", js, `{"username":"alice","password":"wrong-password"}`, 400, badCredentials, nil},
		{"bad password, form", form, "username=alice&password=nope", 400, badCredentials, nil},
		{"unknown user", js, `{"username":"nobody","password":"password123"}`, 400, badCredentials, nil},
		{"inactive user", js, `{"username":"sleeper","password":"password123"}`, 400, badCredentials, nil},
		{"username case differs", js, `{"username":"ALICE","password":"password123"}`, 400, badCredentials, nil},
		{"password with trailing space", js, `{"username":"alice","password":"password123 "}`, 400, badCredentials, nil},
		{"72-byte password", js, `{"username":"long","password":"` + long72 + `"}`, 200, "", nil},
		{"72-byte password plus more", js, `{"username":"long","password":"` + long72 + `!"}`, 400, badCredentials, nil},
		// PostgreSQL refuses NUL and invalid UTF-8 in a query: no 500.
		{"NUL in username", js, `{"username":"alice\u0000","password":"password123"}`, 400, badCredentials, nil},
		{"NUL in username, form", form, "username=alice%00&password=password123", 400, badCredentials, nil},
		{"invalid UTF-8 username, form", form, "username=%ff%fe&password=password123", 400, badCredentials, nil},
		{"invalid UTF-8 password, form", form, "username=alice&password=%ff", 400, badCredentials, nil},
		{"151-char username", js, `{"username":"` + strings.Repeat("a", 151) + `","password":"password123"}`, 400, badCredentials, nil},
		{"missing password", js, `{"username":"alice"}`, 400, "", []string{"password"}},
		{"missing username", js, `{"password":"password123"}`, 400, "", []string{"username"}},
		{"empty object", js, `{}`, 400, "", []string{"password", "username"}},
		{"empty strings", js, `{"username":"","password":""}`, 400, "", []string{"password", "username"}},
		{"non-string username", js, `{"username":42,"password":"password123"}`, 400, "", []string{"username"}},
		{"empty form", form, "", 400, "", []string{"password", "username"}},
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice := e.createUser(t, "alice", false)
			e.createUser(t, "éva", false)
			sleeper := e.createUser(t, "sleeper", false)
			if _, err := e.users.Create(t.Context(), models.NewUser{Username: "long", Password: long72}); err != nil {
				t.Fatal(err)
			}
			off := false
			if _, err := e.users.Update(t.Context(), sleeper.ID, models.UserPatch{IsActive: &off}); err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := fmt.Sprintf("POST /api-token-auth/ %s %s", tt.contentType, tt.body)
					r := e.rest(t, http.MethodPost, "/api-token-auth/", tt.contentType, "", []byte(tt.body))
					if r.status != tt.want {
						t.Fatalf("%s = %d, want %d (body %s)", req, r.status, tt.want, r.body)
					}
					body := r.object(t, req)
					switch {
					case tt.want == 200:
						tok, _ := body["token"].(string)
						if len(body) != 1 || tok == "" {
							t.Fatalf("%s body = %s, want {\"token\": ...}", req, r.body)
						}
						claims := jwtSegment(t, tok, 1)
						if tt.name == "json" && claimInt(t, claims, "user_id") != alice.ID {
							t.Errorf("%s user_id = %v, want %d", req, claims["user_id"], alice.ID)
						}
					case tt.wantErr != "":
						if got := nonFieldError(body); got != tt.wantErr || len(body) != 1 {
							t.Errorf("%s body = %s, want non_field_errors [%q]", req, r.body, tt.wantErr)
						}
					default:
						if len(body) != len(tt.wantMissing) {
							t.Errorf("%s body = %s, want exactly %v reported", req, r.body, tt.wantMissing)
						}
						for _, f := range tt.wantMissing {
							l, _ := body[f].([]any)
							if len(l) != 1 || l[0] != "This field is required." {
								t.Errorf("%s %s = %v, want [\"This field is required.\"]", req, f, body[f])
							}
						}
					}
				})
			}
		})
	}
}

// TestTokenClaims checks the token format: HS256, and exactly the
// rest_framework_jwt claims with exp = orig_iat + JWT_EXPIRATION.
func TestTokenClaims(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			clock := newAuthClock()
			e := newEnv(t, dialect, withClock(clock), withAuth(func(a *middleware.AuthConfig) { a.Expiration = 7 * time.Minute }))
			u, err := e.users.Create(t.Context(), models.NewUser{Username: "claire", Email: "claire@example.com", Password: "password123"})
			if err != nil {
				t.Fatal(err)
			}
			tok := e.login(t, "claire", "password123")
			header := jwtSegment(t, tok, 0)
			if header["alg"] != "HS256" || header["typ"] != "JWT" {
				t.Errorf("token header = %v, want alg HS256, typ JWT", header)
			}
			claims := jwtSegment(t, tok, 1)
			var keys []string
			for k := range claims {
				keys = append(keys, k)
			}
			// rest_framework_jwt's five, plus the user's token version
			// (revocation, issue 11).
			if _, ok := claims["token_version"]; len(claims) != 6 || !ok || claimInt(t, claims, "token_version") != 0 {
				t.Errorf("token claims = %v, want exactly user_id, username, email, exp, orig_iat, token_version", keys)
			}
			if got := claimInt(t, claims, "user_id"); got != u.ID {
				t.Errorf("user_id = %d, want %d", got, u.ID)
			}
			if claims["username"] != "claire" || claims["email"] != "claire@example.com" {
				t.Errorf("username, email = %v, %v; want claire, claire@example.com", claims["username"], claims["email"])
			}
			iat, exp := claimInt(t, claims, "orig_iat"), claimInt(t, claims, "exp")
			if iat != clock.Now().Unix() {
				t.Errorf("orig_iat = %d, want the clock's %d", iat, clock.Now().Unix())
			}
			if exp-iat != int64((7 * time.Minute).Seconds()) {
				t.Errorf("exp - orig_iat = %d s, want %d s", exp-iat, int64((7 * time.Minute).Seconds()))
			}
		})
	}
}

func TestRefreshToken(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			clock := newAuthClock()
			e := newEnv(t, dialect, withClock(clock), withAuth(func(a *middleware.AuthConfig) {
				a.Expiration = 5 * time.Minute
				a.MaxRefresh = 10 * time.Minute
			}))
			e.createUser(t, "rita", false)
			t0 := clock.Now().Unix()
			tok1 := e.login(t, "rita", "password123")
			exp1 := claimInt(t, jwtSegment(t, tok1, 1), "exp")

			refresh := func(tok string) (int, map[string]any) {
				t.Helper()
				return e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": tok})
			}

			// Within exp and the window: a new token, same orig_iat, later exp.
			clock.Advance(4 * time.Minute)
			status, body := refresh(tok1)
			if status != 200 {
				t.Fatalf("POST /api-token-refresh/ at +4m = %d %v, want 200", status, body)
			}
			tok2, _ := body["token"].(string)
			c2 := jwtSegment(t, tok2, 1)
			if got := claimInt(t, c2, "orig_iat"); got != t0 {
				t.Errorf("refreshed orig_iat = %d, want the original %d", got, t0)
			}
			if exp2 := claimInt(t, c2, "exp"); exp2 <= exp1 || exp2 != clock.Now().Add(5*time.Minute).Unix() {
				t.Errorf("refreshed exp = %d, want now+5m = %d (> old exp %d)", exp2, clock.Now().Add(5*time.Minute).Unix(), exp1)
			}
			if c2["username"] != "rita" || len(c2) != 6 {
				t.Errorf("refreshed claims = %v, want the same 6 claims", c2)
			}
			if jwtSegment(t, tok2, 0)["alg"] != "HS256" {
				t.Errorf("refreshed token header = %v, want HS256", jwtSegment(t, tok2, 0))
			}
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok2, nil); status != 200 {
				t.Errorf("GET /api/users/me with refreshed token = %d %v, want 200", status, body)
			}

			// tok1 has expired at +6m; tok2 (exp +9m) still refreshes, and
			// the chain keeps the first orig_iat.
			clock.Advance(2 * time.Minute)
			if status, body := refresh(tok1); status != 400 || nonFieldError(body) != "Signature has expired." {
				t.Errorf("POST /api-token-refresh/ expired token = %d %v, want 400 Signature has expired.", status, body)
			}
			clock.Advance(2 * time.Minute) // +8m
			status, body = refresh(tok2)
			if status != 200 {
				t.Fatalf("POST /api-token-refresh/ at +8m = %d %v, want 200", status, body)
			}
			tok3, _ := body["token"].(string)
			if got := claimInt(t, jwtSegment(t, tok3, 1), "orig_iat"); got != t0 {
				t.Errorf("twice-refreshed orig_iat = %d, want %d", got, t0)
			}

			// At +11m tok3 is valid (exp +13m) but the window (10m from
			// orig_iat) has passed: refresh refused, the token still works.
			clock.Advance(3 * time.Minute)
			status, body = refresh(tok3)
			if status != 400 || nonFieldError(body) != "Refresh has expired." {
				t.Errorf("POST /api-token-refresh/ after the window = %d %v, want 400 Refresh has expired.", status, body)
			}
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok3, nil); status != 200 {
				t.Errorf("GET /api/users/me with unexpired token past the refresh window = %d %v, want 200", status, body)
			}
			clock.Advance(3 * time.Minute) // +14m: tok3 expired too
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok3, nil); status != 401 {
				t.Errorf("GET /api/users/me with expired token = %d %v, want 401", status, body)
			}
		})
	}
}

func TestRefreshAndVerifyRefuseBadTokens(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			clock := newAuthClock()
			e := newEnv(t, dialect, withClock(clock))
			u := e.createUser(t, "vera", false)
			good := e.token(t, u)
			now := clock.Now()
			tests := []struct {
				name    string
				body    string
				wantMsg string // non_field_errors; "" means a field error
			}{
				{"garbage", `{"token":"not-a-jwt"}`, "Error decoding signature."},
				{"three garbage parts", `{"token":"a.b.c"}`, "Error decoding signature."},
				{"another secret", fmt.Sprintf(`{"token":%q}`, signClaims(t, gojwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), userClaims(u, now, time.Minute))), "Error decoding signature."},
				{"HS512 same secret", fmt.Sprintf(`{"token":%q}`, signClaims(t, gojwt.SigningMethodHS512, e.secret, userClaims(u, now, time.Minute))), "Error decoding signature."},
				{"alg none", fmt.Sprintf(`{"token":%q}`, unsignedToken(t, map[string]any{"alg": "none", "typ": "JWT"}, userClaims(u, now, time.Minute))), "Error decoding signature."},
				{"tampered signature", fmt.Sprintf(`{"token":%q}`, good[:len(good)-4]+"AAAA"), "Error decoding signature."},
				{"expired", fmt.Sprintf(`{"token":%q}`, signClaims(t, gojwt.SigningMethodHS256, e.secret, userClaims(u, now.Add(-time.Hour), time.Minute))), "Signature has expired."},
				{"unknown user", fmt.Sprintf(`{"token":%q}`, signClaims(t, gojwt.SigningMethodHS256, e.secret, map[string]any{"user_id": 99999, "username": "ghost", "email": "", "exp": now.Add(time.Minute).Unix(), "orig_iat": now.Unix()})), "User doesn't exist."},
				{"missing token", `{}`, ""},
				{"empty token", `{"token":""}`, ""},
			}
			for _, path := range []string{"/api-token-verify/", "/api-token-refresh/"} {
				for _, tt := range tests {
					t.Run(path+" "+tt.name, func(t *testing.T) {
						req := "POST " + path + " " + tt.name
						r := e.rest(t, http.MethodPost, path, "application/json", "", []byte(tt.body))
						if r.status != 400 {
							t.Fatalf("%s = %d, want 400 (body %s)", req, r.status, r.body)
						}
						body := r.object(t, req)
						if tt.wantMsg == "" {
							if l, _ := body["token"].([]any); len(l) != 1 || l[0] != "This field is required." {
								t.Errorf("%s body = %s, want token: [\"This field is required.\"]", req, r.body)
							}
							return
						}
						if got := nonFieldError(body); got != tt.wantMsg {
							t.Errorf("%s body = %s, want non_field_errors [%q]", req, r.body, tt.wantMsg)
						}
					})
				}
			}

			// The good token verifies (JSON and form) and is echoed back.
			for _, ct := range []string{"application/json", "application/x-www-form-urlencoded"} {
				var b []byte
				if ct == "application/json" {
					b = jsonBody(t, map[string]string{"token": good})
				} else {
					b = []byte("token=" + url.QueryEscape(good))
				}
				r := e.rest(t, http.MethodPost, "/api-token-verify/", ct, "", b)
				if r.status != 200 {
					t.Fatalf("POST /api-token-verify/ %s good token = %d, want 200 (body %s)", ct, r.status, r.body)
				}
				if got := r.object(t, "POST /api-token-verify/"); got["token"] != good || len(got) != 1 {
					t.Errorf("POST /api-token-verify/ %s body = %s, want {\"token\": the same token}", ct, r.body)
				}
			}
			// ... until it expires.
			clock.Advance(6 * time.Minute)
			status, body := e.do(t, http.MethodPost, "/api-token-verify/", "", map[string]string{"token": good})
			if status != 400 || nonFieldError(body) != "Signature has expired." {
				t.Errorf("POST /api-token-verify/ after exp = %d %v, want 400 Signature has expired.", status, body)
			}
		})
	}
}

// TestProtectedRouteRefusesBadTokens: every forged, foreign, expired or
// malformed credential on GET /api/users/me is a 401 in the standard error
// shape.
func TestProtectedRouteRefusesBadTokens(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u := e.createUser(t, "mallory", false)
			staff := e.createUser(t, "boss", true)
			now := time.Now()
			good := e.token(t, u)
			claims := userClaims(u, now, 5*time.Minute)
			with := func(k string, v any) map[string]any {
				c := map[string]any{}
				for k, v := range claims {
					c[k] = v
				}
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
				return c
			}
			hs := func(m gojwt.SigningMethod, key []byte, c map[string]any) string { return signClaims(t, m, key, c) }
			// Keep the signature, swap the payload for one naming staff.
			parts := strings.Split(good, ".")
			forged := parts[0] + "." + strings.Split(hs(gojwt.SigningMethodHS256, e.secret, userClaims(staff, now, 5*time.Minute)), ".")[1] + "." + parts[2]
			tests := []struct {
				name string
				auth string
			}{
				{"alg none", "JWT " + unsignedToken(t, map[string]any{"alg": "none", "typ": "JWT"}, claims)},
				{"alg None", "JWT " + unsignedToken(t, map[string]any{"alg": "None", "typ": "JWT"}, claims)},
				{"alg none with signature", "JWT " + unsignedToken(t, map[string]any{"alg": "none"}, claims) + parts[2]},
				{"HS384 same secret", "JWT " + hs(gojwt.SigningMethodHS384, e.secret, claims)},
				{"HS512 same secret", "JWT " + hs(gojwt.SigningMethodHS512, e.secret, claims)},
				{"another secret", "JWT " + hs(gojwt.SigningMethodHS256, []byte(strings.Repeat("s", 32)), claims)},
				{"empty secret", "JWT " + hs(gojwt.SigningMethodHS256, []byte{}, claims)},
				{"expired", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("exp", now.Add(-time.Second).Unix()))},
				{"no exp", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("exp", nil))},
				{"exp as string", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("exp", fmt.Sprint(now.Add(time.Hour).Unix())))},
				{"user_id as string", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("user_id", fmt.Sprint(u.ID)))},
				{"user_id fractional", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("user_id", float64(u.ID)+0.5))},
				{"no user_id", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("user_id", nil))},
				{"unknown user_id", "JWT " + hs(gojwt.SigningMethodHS256, e.secret, with("user_id", 987654))},
				{"forged payload", "JWT " + forged},
				{"truncated", "JWT " + good[:len(good)/2]},
				{"Token scheme", "Token " + good},
				{"Basic scheme", "Basic bWFsbG9yeTpwYXNzd29yZDEyMw=="},
				{"bare token", good},
				{"Bearer only", "Bearer"},
				{"Bearer and space", "Bearer "},
				{"JWT only", "JWT"},
				{"empty", ""},
				{"token twice", "Bearer " + good + " " + good},
				{"Token x", "Token x"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := fmt.Sprintf("GET /api/users/me with Authorization %q", tt.name)
					r := e.rest(t, http.MethodGet, "/api/users/me", "", tt.auth, nil)
					if r.status != 401 {
						t.Fatalf("%s = %d, want 401 (body %s)", req, r.status, r.body)
					}
					if code := errorCode(t, req, r.object(t, req)); code != "unauthorized" {
						t.Errorf("%s error.code = %q, want unauthorized", req, code)
					}
				})
			}
			// A token is not accepted from the query string on REST routes.
			r := e.rest(t, http.MethodGet, "/api/users/me?token="+url.QueryEscape(good), "", "", nil)
			if r.status != 401 {
				t.Errorf("GET /api/users/me?token=<good> = %d, want 401 (body %s)", r.status, r.body)
			}
		})
	}
}

func TestAuthorizationSchemes(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			tok := e.token(t, e.createUser(t, "sam", false))
			for _, auth := range []string{"JWT " + tok, "Bearer " + tok, "jwt " + tok, "bearer " + tok, "JWT  " + tok} {
				status, body := e.do(t, http.MethodGet, "/api/users/me", auth, nil)
				if status != 200 || body["username"] != "sam" {
					t.Errorf("GET /api/users/me with %q = %d %v, want 200 sam", auth[:len(auth)-len(tok)]+"<t>", status, body)
				}
			}
		})
	}
}

// TestLoginRateLimit: token requests over the per-IP burst get a JSON 429.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, "sqlite", func(d *handlers.Deps, _ *middleware.AuthConfig) { d.LoginRate, d.LoginBurst = 0.001, 3 })
	for i := range 4 {
		r := e.rest(t, http.MethodPost, "/api-token-auth/", "application/json", "", []byte(`{"username":"x","password":"yyyyyyyy"}`))
		want := 400
		if i == 3 {
			want = 429
		}
		if r.status != want {
			t.Fatalf("POST /api-token-auth/ #%d = %d, want %d (body %s)", i+1, r.status, want, r.body)
		}
		if want == 429 {
			if code := errorCode(t, "POST /api-token-auth/", r.object(t, "POST /api-token-auth/")); code != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Errorf("POST /api-token-auth/ #4 code %q, Retry-After %q; want rate_limited and a Retry-After", code, r.header.Get("Retry-After"))
			}
		}
	}
}

// pyjwt runs a Python snippet with Debian's python3-jwt and returns its
// stdout, skipping the test when the module is missing.
func pyjwt(t *testing.T, script string, args ...string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import jwt").Run(); err != nil {
		t.Skipf("PyJWT interop skipped: %s has no jwt module (apt-get install python3-jwt): %v", py, err)
	}
	cmd := exec.CommandContext(t.Context(), py, append([]string{"-c", script}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python3 -c %q: %v\n%s", script, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// TestPyJWTInterop: a token minted by PyJWT (what rest_framework_jwt uses)
// is accepted, and PyJWT decodes ours with the expected claims.
func TestPyJWTInterop(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u, err := e.users.Create(t.Context(), models.NewUser{Username: "pyuser", Email: "py@example.com", Password: "password123"})
			if err != nil {
				t.Fatal(err)
			}

			// (a) PyJWT mints, we accept.
			const encode = `import sys, json, time, jwt
now = int(time.time())
claims = {"user_id": int(sys.argv[2]), "username": sys.argv[3], "email": sys.argv[4], "exp": now + 300, "orig_iat": now}
tok = jwt.encode(claims, sys.argv[1], algorithm="HS256")
print(tok.decode() if isinstance(tok, bytes) else tok)`
			tok := pyjwt(t, encode, string(e.secret), fmt.Sprint(u.ID), u.Username, u.Email)
			status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil)
			if status != 200 || body["username"] != "pyuser" {
				t.Errorf("GET /api/users/me with PyJWT token = %d %v, want 200 pyuser", status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api-token-verify/", "", map[string]string{"token": tok})
			if status != 200 {
				t.Errorf("POST /api-token-verify/ PyJWT token = %d %v, want 200", status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": tok})
			if status != 200 {
				t.Errorf("POST /api-token-refresh/ PyJWT token = %d %v, want 200", status, body)
			}
			// PyJWT with another key is refused.
			other := pyjwt(t, encode, strings.Repeat("z", 32), fmt.Sprint(u.ID), u.Username, u.Email)
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+other, nil); status != 401 {
				t.Errorf("GET /api/users/me with PyJWT token under another key = %d %v, want 401", status, body)
			}

			// (b) We mint (login and refresh), PyJWT verifies and decodes.
			const decode = `import sys, json, jwt
print(json.dumps(jwt.decode(sys.argv[2], sys.argv[1], algorithms=["HS256"])))`
			ours := e.login(t, "pyuser", "password123")
			_, rb := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": ours})
			refreshed, _ := rb["token"].(string)
			for name, tk := range map[string]string{"login": ours, "refresh": refreshed} {
				var got map[string]any
				if err := json.Unmarshal([]byte(pyjwt(t, decode, string(e.secret), tk)), &got); err != nil {
					t.Fatalf("PyJWT decode of %s token: %v", name, err)
				}
				if got["user_id"] != float64(u.ID) || got["username"] != "pyuser" || got["email"] != "py@example.com" {
					t.Errorf("PyJWT decode of %s token = %v, want user_id %d, pyuser, py@example.com", name, got, u.ID)
				}
				exp, _ := got["exp"].(float64)
				iat, _ := got["orig_iat"].(float64)
				if exp-iat < 299 || exp-iat > 301 {
					t.Errorf("PyJWT decode of %s token: exp - orig_iat = %v, want 300", name, exp-iat)
				}
			}
			// PyJWT refuses our token under a wrong key (the signature is real).
			const wrong = `import sys, jwt
try:
    jwt.decode(sys.argv[2], sys.argv[1], algorithms=["HS256"])
    print("accepted")
except jwt.InvalidSignatureError:
    print("invalid signature")`
			if got := pyjwt(t, wrong, strings.Repeat("w", 32), ours); got != "invalid signature" {
				t.Errorf("PyJWT decode of our token with a wrong key: %s, want invalid signature", got)
			}
		})
	}
}

// TestLoginRateLimitIgnoresForwardedFor: the per-IP bucket is the peer's
// address; a client cannot pick a fresh bucket per request by sending
// X-Forwarded-For or X-Real-IP.
func TestLoginRateLimitIgnoresForwardedFor(t *testing.T) {
	e := newEnv(t, "sqlite", func(d *handlers.Deps, _ *middleware.AuthConfig) { d.LoginRate, d.LoginBurst = 0.001, 3 })
	limited := 0
	for i := range 8 {
		h := testenv.Headers("Content-Type", "application/json",
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1),
			"X-Real-IP", fmt.Sprintf("198.51.100.%d", i+1))
		r, err := e.send(t, http.MethodPost, "/api-token-auth/", h, `{"username":"x","password":"yyyyyyyy"}`)
		if err != nil {
			t.Fatalf("POST /api-token-auth/ #%d: %v", i+1, err)
		}
		if r.status == 429 {
			limited++
		}
	}
	if limited != 5 {
		t.Errorf("8 POST /api-token-auth/ with rotating X-Forwarded-For: %d got 429, want 5 (burst 3)", limited)
	}
}

package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"switchboard/handlers"
	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// withAPIKey sets PUBLISH_API_KEY.
func withAPIKey(key string) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { d.PublishAPIKey = key }
}

// pyMint mints a token with PyJWT from JSON claims in which a string
// "=<expr>" is a Python expression of now (time.time(), float seconds), as
// Django-era code (rest_framework_jwt, hand-written scripts) writes them.
const pyMint = `import sys, json, time, jwt
claims = json.loads(sys.argv[2])
for k, v in list(claims.items()):
    if isinstance(v, str) and v.startswith("="):
        claims[k] = eval(v[1:], {"now": time.time(), "int": int, "float": float})
tok = jwt.encode(claims, sys.argv[1], algorithm="HS256")
print(tok.decode() if isinstance(tok, bytes) else tok)`

// TestDjangoShapedTokens: tokens as PyJWT and rest_framework_jwt write
// them (a non-integer NumericDate, RFC 7519 §2; no orig_iat, the default
// payload when JWT_ALLOW_REFRESH is off) are accepted by REST, verify and
// sockets alike; a claim of the wrong JSON type is "token invalid"; and
// refresh without orig_iat answers rest_framework_jwt's words.
func TestDjangoShapedTokens(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u := e.createUser(t, "dj", false)
			base := fmt.Sprintf(`"user_id": %d, "username": "dj", "email": ""`, u.ID)
			mint := func(extra string) string {
				return pyjwt(t, pyMint, string(e.secret), "{"+base+", "+extra+"}")
			}
			accepted := []struct{ name, tok string }{
				{"fractional exp", mint(`"exp": "=now + 300.25", "orig_iat": "=int(now)"`)},
				{"no orig_iat (DRF-JWT)", mint(`"exp": "=int(now) + 300"`)},
				{"fractional orig_iat", mint(`"exp": "=int(now) + 300", "orig_iat": "=now - 0.5"`)},
				{"nbf in the past, iat", mint(`"exp": "=now + 60", "nbf": "=now - 10", "iat": "=now - 10"`)},
				{"exp as a float, integer", mint(`"exp": "=float(int(now) + 300)"`)},
			}
			for _, a := range accepted {
				name, tok := a.name, a.tok
				if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 200 {
					t.Errorf("%s: GET /api/users/me = %d %v, want 200", name, status, body)
				}
				if status, body := e.do(t, http.MethodPost, "/api-token-verify/", "", map[string]string{"token": tok}); status != 200 {
					t.Errorf("%s: POST /api-token-verify/ = %d %v, want 200", name, status, body)
				}
				conn := e.dial(t, "/ws/chat/?token="+url.QueryEscape(tok))
				if f := readFrame(t, conn); f["type"] != "welcome" {
					t.Errorf("%s: /ws/chat/ first frame = %v, want welcome", name, f)
				}
				conn.Close()
			}

			noOrigIat := accepted[1].tok
			status, body := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": noOrigIat})
			if status != 400 || fmt.Sprint(body["non_field_errors"]) != "[orig_iat field is required.]" {
				t.Errorf("refresh without orig_iat = %d %v, want 400 orig_iat field is required.", status, body)
			}
			if status, body := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": accepted[0].tok}); status != 200 {
				t.Errorf("refresh of a fractional-exp token = %d %v, want 200", status, body)
			}

			refused := []struct {
				name, claims, reason string
			}{
				{"exp as a string", `"exp": "9999999999"`, "token invalid"},
				{"user_id as a string", `"exp": "=now + 300"`, ""}, // replaced below
				{"user_id fractional", `"exp": "=now + 300"`, ""},
				{"no exp", `"orig_iat": "=int(now)"`, "token invalid"},
				{"expired fractional exp", `"exp": "=now - 0.25"`, "token expired"},
				{"nbf in the future", `"exp": "=now + 300", "nbf": "=now + 120"`, "token invalid"},
				{"orig_iat as a string", `"exp": "=now + 300", "orig_iat": "yesterday"`, "token invalid"},
			}
			for _, tc := range refused {
				var tok string
				switch tc.name {
				case "user_id as a string":
					tok = pyjwt(t, pyMint, string(e.secret), fmt.Sprintf(`{"user_id": "%d", "username": "dj", "exp": "=now + 300"}`, u.ID))
					tc.reason = "token invalid"
				case "user_id fractional":
					tok = pyjwt(t, pyMint, string(e.secret), fmt.Sprintf(`{"user_id": %d.5, "username": "dj", "exp": "=now + 300"}`, u.ID))
					tc.reason = "token invalid"
				default:
					tok = mint(tc.claims)
				}
				status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil)
				if msg := errMessage(body); status != 401 || msg != tc.reason {
					t.Errorf("%s: GET /api/users/me = %d %q, want 401 %q", tc.name, status, msg, tc.reason)
				}
				conn := e.dial(t, "/ws/chat/?token="+url.QueryEscape(tok))
				expectClose(t, conn, 4001, tc.reason)
			}
		})
	}
}

func errMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// TestUsernameNormalisedEverywhere: the string a user registered with
// always logs in: NFKC on every way in (a decomposed "éloïse" as macOS
// sends it), and surrounding whitespace trimmed as DRF's CharField does.
func TestUsernameNormalisedEverywhere(t *testing.T) {
	const decomposed = "e\u0301loi\u0308se"
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			status, body := e.do(t, http.MethodPost, "/api/users/", "", map[string]string{"username": decomposed, "password": "password123", "email": ""})
			if status != 201 || body["username"] != "\u00e9lo\u00efse" {
				t.Fatalf("register %q = %d %v, want 201 with the NFKC name", decomposed, status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api/users/", "", map[string]string{"username": "  alice\t", "password": "password123", "email": ""})
			if status != 201 || body["username"] != "alice" {
				t.Fatalf(`register "  alice\t" = %d %v, want 201 alice`, status, body)
			}
			for _, name := range []string{decomposed, "\u00e9lo\u00efse", " " + decomposed + " ", "alice", " alice", "alice\n", "ａｌｉｃｅ"} {
				status, body := e.do(t, http.MethodPost, "/api-token-auth/", "", map[string]string{"username": name, "password": "password123"})
				if status != 200 || body["token"] == nil {
					t.Errorf("POST /api-token-auth/ as %q = %d %v, want 200 and a token", name, status, body)
				}
			}
			if u, err := e.users.GetByUsername(t.Context(), " "+decomposed); err != nil || u.Username != "\u00e9lo\u00efse" {
				t.Errorf("GetByUsername(%q) = %v, %v; want the registered user", " "+decomposed, u, err)
			}
			// A different password still fails: normalisation is not a bypass.
			if status, _ := e.do(t, http.MethodPost, "/api-token-auth/", "", map[string]string{"username": decomposed, "password": "wrong-password"}); status != 400 {
				t.Errorf("POST /api-token-auth/ with a wrong password = %d, want 400", status)
			}
		})
	}
}

// TestEveryChatGroupIsUsable: every group the server puts a user in
// (chat-<first character>, and usernames allow @ . + - _) works in the
// group APIs: presence for its members, publishing for staff.
func TestEveryChatGroupIsUsable(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withAPIKey("k3y-for-tests-k3y-for-tests"))
			staff := e.createUser(t, "staffer", true)
			for _, name := range []string{"+u7", "@ann", ".dot", "-dash", "_under", "9nine", "éva"} {
				u := e.createUser(t, name, false)
				conn := e.dial(t, "/ws/chat/?token="+url.QueryEscape(e.token(t, u)))
				w := readFrame(t, conn)
				group, _ := w["group"].(string)
				if group != "chat-"+string([]rune(name)[0]) {
					t.Fatalf("%s welcomed into %q", name, group)
				}
				path := "/api/groups/" + url.PathEscape(group)
				status, body := e.do(t, http.MethodGet, path+"/presence", "JWT "+e.token(t, u), nil)
				if status != 200 || fmt.Sprint(body["users"]) != "["+name+"]" {
					t.Errorf("GET %s/presence as %s = %d %v, want 200 [%s]", path, name, status, body, name)
				}
				for _, auth := range []string{"JWT " + e.token(t, staff), "Api-Key k3y-for-tests-k3y-for-tests"} {
					status, body = e.do(t, http.MethodPost, path+"/messages", auth, map[string]any{"data": name})
					if status != 202 {
						t.Errorf("POST %s/messages (%s) = %d %v, want 202", path, auth[:3], status, body)
						continue
					}
					if f := readUntil(t, conn, "publish"); f["data"] != name || f["group"] != group {
						t.Errorf("publish frame = %v, want data %q in %q", f, name, group)
					}
				}
				conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
				conn.Close()
			}
		})
	}
}

// FuzzChatGroupOfValidUsernameIsValid: the rule behind
// TestEveryChatGroupIsUsable, over arbitrary usernames.
func FuzzChatGroupOfValidUsernameIsValid(f *testing.F) {
	for _, s := range []string{"+u7", "@", "é", "日本", "a", " ｂ", "e\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		name = models.NormalizeUsername(name)
		if models.ValidateUsername(name) != nil {
			return
		}
		if g := ws.ChatGroup(name); !ws.ValidName(g) {
			t.Fatalf("username %q is valid but its group %q is not a valid group name", name, g)
		}
	})
}

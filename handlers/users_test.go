package handlers_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"switchboard/internal/testenv"
	"switchboard/models"
)

func TestCreateUser(t *testing.T) {
	tests := []struct {
		name      string
		body      map[string]any
		want      int
		wantField string // for 400: the field error.fields must name
	}{
		{"ascii", map[string]any{"username": "alice", "password": "password123", "email": "alice@example.com"}, 201, ""},
		{"accented", map[string]any{"username": "éva", "password": "password123", "email": "eva@example.com"}, 201, ""},
		{"cjk", map[string]any{"username": "日本", "password": "password123"}, 201, ""},
		{"all punctuation allowed", map[string]any{"username": "a.b+c-d_e@f", "password": "password123"}, 201, ""},
		{"digits only", map[string]any{"username": "12345", "password": "password123"}, 201, ""},
		{"150 chars", map[string]any{"username": strings.Repeat("a", 150), "password": "password123"}, 201, ""},
		{"150 two-byte chars", map[string]any{"username": strings.Repeat("é", 150), "password": "password123"}, 201, ""},
		{"8-char password", map[string]any{"username": "eight", "password": "12345678"}, 201, ""},
		{"8-rune multibyte password", map[string]any{"username": "runes", "password": "日本語日本語日本"}, 201, ""},
		{"72-byte password", map[string]any{"username": "long72", "password": strings.Repeat("p", 72)}, 201, ""},
		{"is_staff ignored", map[string]any{"username": "sneaky", "password": "password123", "is_staff": true, "is_active": false}, 201, ""},

		{"151 chars", map[string]any{"username": strings.Repeat("a", 151), "password": "password123"}, 400, "username"},
		{"151 two-byte chars", map[string]any{"username": strings.Repeat("é", 151), "password": "password123"}, 400, "username"},
		{"empty username", map[string]any{"username": "", "password": "password123"}, 400, "username"},
		{"missing username", map[string]any{"password": "password123"}, 400, "username"},
		{"space", map[string]any{"username": "a b", "password": "password123"}, 400, "username"},
		// Surrounding whitespace is trimmed, as DRF's CharField does
		// (issue 9 item 4): " alice2" registers alice2.
		{"leading space", map[string]any{"username": " alice2", "password": "password123"}, 201, ""},
		{"emoji", map[string]any{"username": "a😀", "password": "password123"}, 400, "username"},
		{"script tag", map[string]any{"username": "<script>", "password": "password123"}, 400, "username"},
		{"slash", map[string]any{"username": "a/b", "password": "password123"}, 400, "username"},
		{"NUL", map[string]any{"username": "a\x00b", "password": "password123"}, 400, "username"},
		{"newline", map[string]any{"username": "a\nb", "password": "password123"}, 400, "username"},
		{"combining mark", map[string]any{"username": "e\u0301va", "password": "password123"}, 400, "username"},
		{"username not a string", map[string]any{"username": 42, "password": "password123"}, 400, "username"},
		{"7-char password", map[string]any{"username": "shortpw", "password": "1234567"}, 400, "password"},
		{"missing password", map[string]any{"username": "nopw"}, 400, "password"},
		{"73-byte password", map[string]any{"username": "long73", "password": strings.Repeat("p", 73)}, 400, "password"},
		{"bad email", map[string]any{"username": "bademail", "password": "password123", "email": "not-an-email"}, 400, "email"},
		{"email with display name", map[string]any{"username": "named", "password": "password123", "email": "Bob <bob@example.com>"}, 400, "email"},
		{"email too long", map[string]any{"username": "longmail", "password": "password123", "email": strings.Repeat("a", 250) + "@x.io"}, 400, "email"},
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := fmt.Sprintf("POST /api/users/ %v", tt.name)
					r := e.rest(t, http.MethodPost, "/api/users/", "application/json", "", jsonBody(t, tt.body))
					if r.status != tt.want {
						t.Fatalf("%s = %d, want %d (body %s)", req, r.status, tt.want, r.body)
					}
					body := r.object(t, req)
					for _, secret := range []string{"password", "hash", "$2a$", "pbkdf2"} {
						if strings.Contains(string(r.body), secret) && tt.want == 201 {
							t.Errorf("%s body %s contains %q", req, r.body, secret)
						}
					}
					if tt.want != 201 {
						if code := errorCode(t, req, body); code != "invalid" {
							t.Errorf("%s error.code = %q, want invalid", req, code)
						}
						if _, ok := errorFields(body)[tt.wantField]; !ok {
							t.Errorf("%s error.fields = %v, want a %q entry", req, errorFields(body), tt.wantField)
						}
						return
					}
					checkUserJSON(t, req, body, models.NormalizeUsername(tt.body["username"].(string)))
					if body["email"] != stringOr(tt.body["email"]) {
						t.Errorf("%s email = %v, want %q", req, body["email"], stringOr(tt.body["email"]))
					}
					if body["is_active"] != true || body["is_staff"] != false {
						t.Errorf("%s is_active, is_staff = %v, %v; want true, false", req, body["is_active"], body["is_staff"])
					}
					// The new account can log in with the password it was created with.
					e.login(t, tt.body["username"].(string), tt.body["password"].(string))
				})
			}
		})
	}
}

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}

// checkUserJSON checks the public user shape: exactly id, username, email,
// is_active and is_staff.
func checkUserJSON(t *testing.T, req string, body map[string]any, username string) {
	t.Helper()
	var keys []string
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got, want := strings.Join(keys, ","), "email,id,is_active,is_staff,username"; got != want {
		t.Errorf("%s keys = %s, want %s", req, got, want)
	}
	if id, _ := body["id"].(float64); id <= 0 || id != float64(int64(id)) {
		t.Errorf("%s id = %v, want a positive integer", req, body["id"])
	}
	if body["username"] != username {
		t.Errorf("%s username = %v, want %q", req, body["username"], username)
	}
}

func TestCreateUserDuplicateUsername(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			const req = "POST /api/users/ bob twice"
			body := jsonBody(t, map[string]string{"username": "bob", "password": "password123"})
			if r := e.rest(t, http.MethodPost, "/api/users/", "application/json", "", body); r.status != 201 {
				t.Fatalf("first %s = %d, want 201 (body %s)", req, r.status, r.body)
			}
			r := e.rest(t, http.MethodPost, "/api/users/", "application/json", "", body)
			if r.status != 400 {
				t.Fatalf("second %s = %d, want 400 (body %s)", req, r.status, r.body)
			}
			got := r.object(t, req)
			if code := errorCode(t, req, got); code != "invalid" {
				t.Errorf("%s error.code = %q, want invalid", req, code)
			}
			if msg, _ := errorFields(got)["username"].(string); msg == "" {
				t.Errorf("%s error.fields = %v, want a username message", req, errorFields(got))
			}
			// Uniqueness is case-sensitive, as in Django.
			if r := e.rest(t, http.MethodPost, "/api/users/", "application/json", "",
				jsonBody(t, map[string]string{"username": "Bob", "password": "password123"})); r.status != 201 {
				t.Errorf("POST /api/users/ Bob after bob = %d, want 201 (body %s)", r.status, r.body)
			}
		})
	}
}

// TestCreateUserConcurrentDuplicates races registrations of one name: one
// wins, the others get the duplicate 400, none a 500 (SQLITE_BUSY, a
// unique violation that escaped translation).
func TestCreateUserConcurrentDuplicates(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			const n = 8
			body := jsonBody(t, map[string]string{"username": "racer", "password": "password123"})
			statuses := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = e.rest(t, http.MethodPost, "/api/users/", "application/json", "", body).status
				}()
			}
			wg.Wait()
			created := 0
			for _, s := range statuses {
				switch s {
				case 201:
					created++
				case 400:
				default:
					t.Errorf("concurrent POST /api/users/ racer = %d, want 201 or 400", s)
				}
			}
			if created != 1 {
				t.Errorf("concurrent POST /api/users/ racer: %d created (statuses %v), want 1", created, statuses)
			}
		})
	}
}

// TestStaffOnlyRoutes checks the guards of every staff route: no token 401,
// a valid non-staff token 403.
func TestStaffOnlyRoutes(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			plain := e.createUser(t, "plain", false)
			target := e.createUser(t, "target", false)
			userTok := "JWT " + e.token(t, plain)
			id := fmt.Sprint(target.ID)
			routes := []struct {
				method, path string
				body         []byte
			}{
				{http.MethodGet, "/api/users/", nil},
				{http.MethodGet, "/api/users", nil},
				{http.MethodGet, "/api/users/" + id, nil},
				{http.MethodGet, "/api/users/" + id + "/", nil},
				{http.MethodPatch, "/api/users/" + id, []byte(`{"is_staff":true}`)},
				{http.MethodPatch, "/api/users/" + fmt.Sprint(plain.ID), []byte(`{"is_staff":true}`)},
				{http.MethodDelete, "/api/users/" + id, nil},
			}
			callers := []struct {
				name, auth string
				want       int
				wantCode   string
			}{
				{"no token", "", 401, "unauthorized"},
				{"non-staff", userTok, 403, "forbidden"},
			}
			for _, rt := range routes {
				for _, c := range callers {
					t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
						req := fmt.Sprintf("%s %s as %s", rt.method, rt.path, c.name)
						ct := ""
						if rt.body != nil {
							ct = "application/json"
						}
						r := e.rest(t, rt.method, rt.path, ct, c.auth, rt.body)
						if r.status != c.want {
							t.Fatalf("%s = %d, want %d (body %s)", req, r.status, c.want, r.body)
						}
						if code := errorCode(t, req, r.object(t, req)); code != c.wantCode {
							t.Errorf("%s error.code = %q, want %q", req, code, c.wantCode)
						}
					})
				}
			}
			// Nothing the refused requests asked for happened.
			for _, u := range []string{"plain", "target"} {
				got, err := e.users.GetByUsername(t.Context(), u)
				if err != nil {
					t.Fatalf("user %s after refused requests: %v", u, err)
				}
				if got.IsStaff {
					t.Errorf("user %s is staff after refused PATCHes", u)
				}
			}
		})
	}
}

func TestStaffUserAdmin(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			staff := e.createUser(t, "boss", true)
			auth := "Bearer " + e.token(t, staff)
			var ids []int64
			for i := range 5 {
				ids = append(ids, e.createUser(t, fmt.Sprintf("u%d", i), false).ID)
			}

			// List, with pagination.
			status, body := e.do(t, http.MethodGet, "/api/users/", auth, nil)
			if status != 200 {
				t.Fatalf("GET /api/users/ as staff = %d, want 200 (%v)", status, body)
			}
			results, _ := body["results"].([]any)
			if len(results) != 6 {
				t.Fatalf("GET /api/users/ results = %d users, want 6", len(results))
			}
			for _, r := range results {
				checkUserJSON(t, "GET /api/users/ result", r.(map[string]any), r.(map[string]any)["username"].(string))
			}
			status, body = e.do(t, http.MethodGet, "/api/users/?limit=2&offset=1", auth, nil)
			results, _ = body["results"].([]any)
			if status != 200 || len(results) != 2 || results[0].(map[string]any)["username"] != "u0" {
				t.Errorf("GET /api/users/?limit=2&offset=1 = %d %v, want 200 with u0, u1", status, body)
			}
			for _, q := range []string{"limit=0", "limit=1001", "limit=abc", "offset=-1", "offset=x"} {
				if status, body := e.do(t, http.MethodGet, "/api/users/?"+q, auth, nil); status != 400 {
					t.Errorf("GET /api/users/?%s = %d %v, want 400", q, status, body)
				}
			}

			// Get one.
			path := fmt.Sprintf("/api/users/%d", ids[0])
			status, body = e.do(t, http.MethodGet, path, auth, nil)
			if status != 200 {
				t.Fatalf("GET %s = %d, want 200 (%v)", path, status, body)
			}
			checkUserJSON(t, "GET "+path, body, "u0")

			// Patch.
			status, body = e.do(t, http.MethodPatch, path, auth, map[string]any{"email": "u0@example.com", "is_staff": true})
			if status != 200 || body["email"] != "u0@example.com" || body["is_staff"] != true {
				t.Errorf("PATCH %s email+is_staff = %d %v, want 200 with the new values", path, status, body)
			}
			status, body = e.do(t, http.MethodPatch, path, auth, map[string]any{})
			if status != 200 || body["email"] != "u0@example.com" {
				t.Errorf("PATCH %s {} = %d %v, want 200 unchanged", path, status, body)
			}
			patchErrors := []struct {
				name  string
				body  string
				field string
			}{
				{"bad email", `{"email":"nope"}`, "email"},
				{"is_active not a bool", `{"is_active":"no"}`, "is_active"},
				{"is_staff not a bool", `{"is_staff":1}`, "is_staff"},
			}
			for _, pe := range patchErrors {
				status, body := e.do(t, http.MethodPatch, path, auth, pe.body)
				if status != 400 {
					t.Errorf("PATCH %s %s = %d, want 400 (%v)", path, pe.body, status, body)
					continue
				}
				if _, ok := errorFields(body)[pe.field]; !ok {
					t.Errorf("PATCH %s %s error.fields = %v, want %q", path, pe.body, errorFields(body), pe.field)
				}
			}

			// Delete, then it is gone.
			path = fmt.Sprintf("/api/users/%d", ids[1])
			r := e.rest(t, http.MethodDelete, path, "", auth, nil)
			if r.status != 204 || len(r.body) != 0 {
				t.Fatalf("DELETE %s = %d %q, want 204 with no body", path, r.status, r.body)
			}
			for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
				var b any
				if m == http.MethodPatch {
					b = map[string]any{"is_active": false}
				}
				status, body := e.do(t, m, path, auth, b)
				if status != 404 || errorCode(t, m+" "+path, body) != "not_found" {
					t.Errorf("%s %s after delete = %d %v, want 404 not_found", m, path, status, body)
				}
			}
		})
	}
}

func TestUserIDNotFound(t *testing.T) {
	ids := []string{"999999", "abc", "0", "-1", "1.5", "99999999999999999999", "%20", "1e3"}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			auth := "JWT " + e.token(t, e.createUser(t, "boss", true))
			for _, id := range ids {
				for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
					path := "/api/users/" + id
					var b any
					if m == http.MethodPatch {
						b = map[string]any{"is_active": false}
					}
					status, body := e.do(t, m, path, auth, b)
					if status != 404 {
						t.Errorf("%s %s = %d, want 404 (%v)", m, path, status, body)
						continue
					}
					if code := errorCode(t, m+" "+path, body); code != "not_found" {
						t.Errorf("%s %s error.code = %q, want not_found", m, path, code)
					}
				}
			}
		})
	}
}

// TestDeactivationRevokesAtOnce: a staff PATCH {is_active:false} stops the
// user's existing token and logins immediately; reactivating restores both.
func TestDeactivationRevokesAtOnce(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			staffAuth := "JWT " + e.token(t, e.createUser(t, "boss", true))
			u := e.createUser(t, "worker", false)
			tok := e.login(t, "worker", "password123")
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 200 {
				t.Fatalf("GET /api/users/me before deactivation = %d, want 200 (%v)", status, body)
			}
			path := fmt.Sprintf("/api/users/%d", u.ID)
			status, body := e.do(t, http.MethodPatch, path, staffAuth, map[string]any{"is_active": false})
			if status != 200 || body["is_active"] != false {
				t.Fatalf("PATCH %s is_active=false = %d %v, want 200 inactive", path, status, body)
			}
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 401 {
				t.Errorf("GET /api/users/me with inactive user's token = %d, want 401 (%v)", status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api-token-auth/", "", map[string]string{"username": "worker", "password": "password123"})
			if status != 400 || !isBadCredentials(body) {
				t.Errorf("POST /api-token-auth/ as inactive user = %d %v, want 400 bad credentials", status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": tok})
			if status != 400 {
				t.Errorf("POST /api-token-refresh/ inactive user's token = %d %v, want 400", status, body)
			}
			status, body = e.do(t, http.MethodPost, "/api-token-verify/", "", map[string]string{"token": tok})
			if status != 400 {
				t.Errorf("POST /api-token-verify/ inactive user's token = %d %v, want 400", status, body)
			}

			status, body = e.do(t, http.MethodPatch, path, staffAuth, map[string]any{"is_active": true})
			if status != 200 || body["is_active"] != true {
				t.Fatalf("PATCH %s is_active=true = %d %v, want 200 active", path, status, body)
			}
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 200 {
				t.Errorf("GET /api/users/me after reactivation = %d, want 200 (%v)", status, body)
			}
			e.login(t, "worker", "password123")
		})
	}
}

func TestDeletedUserTokenRefused(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			staffAuth := "JWT " + e.token(t, e.createUser(t, "boss", true))
			u := e.createUser(t, "leaver", false)
			tok := "JWT " + e.token(t, u)
			if status, _ := e.do(t, http.MethodDelete, fmt.Sprintf("/api/users/%d", u.ID), staffAuth, nil); status != 204 {
				t.Fatalf("DELETE /api/users/%d = %d, want 204", u.ID, status)
			}
			status, body := e.do(t, http.MethodGet, "/api/users/me", tok, nil)
			if status != 401 || errorCode(t, "GET /api/users/me", body) != "unauthorized" {
				t.Errorf("GET /api/users/me with deleted user's token = %d %v, want 401 unauthorized", status, body)
			}
			// A new user reusing the name does not inherit the old token:
			// the token names a user id, and ids are not reused.
			e.createUser(t, "leaver", false)
			if status, body := e.do(t, http.MethodGet, "/api/users/me", tok, nil); status != 401 {
				t.Errorf("GET /api/users/me with old token after name reuse = %d %v, want 401", status, body)
			}
		})
	}
}

func TestMe(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u := e.createUser(t, "éva", false)
			r := e.rest(t, http.MethodGet, "/api/users/me", "", "JWT "+e.token(t, u), nil)
			if r.status != 200 {
				t.Fatalf("GET /api/users/me = %d, want 200 (body %s)", r.status, r.body)
			}
			checkUserJSON(t, "GET /api/users/me", r.object(t, "GET /api/users/me"), "éva")
			if strings.Contains(string(r.body), "$2a$") || strings.Contains(string(r.body), "password") {
				t.Errorf("GET /api/users/me body %s leaks the password hash", r.body)
			}
		})
	}
}

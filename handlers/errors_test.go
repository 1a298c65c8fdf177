package handlers_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// TestErrorResponses: every refused request gets the right status and a
// JSON body of the standard shape; nothing is a 500.
func TestErrorResponses(t *testing.T) {
	const js = "application/json"
	huge := func(prefix string, n int) []byte {
		return append([]byte(prefix), bytes.Repeat([]byte(" "), n-len(prefix))...)
	}
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		staff       bool // send a staff token
		body        []byte
		want        int
		wantCode    string // error.code; "" for the DRF-shaped 400s
	}{
		{"malformed JSON", "POST", "/api/users/", js, false, []byte(`{"username":`), 400, "invalid"},
		{"JSON array", "POST", "/api/users/", js, false, []byte(`[]`), 400, "invalid"},
		{"JSON string", "POST", "/api/users/", js, false, []byte(`"alice"`), 400, "invalid"},
		{"trailing data", "POST", "/api/users/", js, false, []byte(`{"username":"a","password":"password123"} {}`), 400, "invalid"},
		{"empty body", "POST", "/api/users/", js, false, []byte{}, 400, "invalid"},
		{"invalid UTF-8 username", "POST", "/api/users/", js, false, []byte("{\"username\":\"a\xffb\",\"password\":\"password123\"}"), 400, "invalid"},
		{"deeply nested", "POST", "/api/users/", js, false, []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)), 400, "invalid"},
		{"text/plain", "POST", "/api/users/", "text/plain", false, []byte(`{"username":"a","password":"password123"}`), 415, "unsupported_media_type"},
		{"no content type", "POST", "/api/users/", "", false, []byte(`{"username":"a","password":"password123"}`), 415, "unsupported_media_type"},
		{"form on JSON-only route", "PATCH", "/api/users/1", "application/x-www-form-urlencoded", true, []byte(`is_staff=true`), 415, "unsupported_media_type"},
		{"bad media type", "POST", "/api/users/", "application/json; charset", false, []byte(`{}`), 415, "unsupported_media_type"},
		{"body 1 MiB + 1", "POST", "/api/users/", js, false, huge(`{"username":"big"}`, 1<<20+1), 413, "too_large"},
		{"body 4 MiB", "POST", "/api/users/", js, false, huge(`{}`, 4<<20), 413, "too_large"},
		{"body exactly 1 MiB", "POST", "/api/users/", js, false, huge(`{"username":"big","password":"password123"}`, 1<<20), 201, ""},

		{"token auth text/plain", "POST", "/api-token-auth/", "text/plain", false, []byte(`{}`), 415, "unsupported_media_type"},
		{"token auth multipart without boundary", "POST", "/api-token-auth/", "multipart/form-data", false, []byte("--x--"), 400, "invalid"},
		{"token auth malformed JSON", "POST", "/api-token-auth/", js, false, []byte(`{"username"`), 400, "invalid"},
		{"token auth JSON null", "POST", "/api-token-auth/", js, false, []byte(`null`), 400, "invalid"},
		{"token auth JSON array", "POST", "/api-token-auth/", js, false, []byte(`["a"]`), 400, "invalid"},
		{"token auth malformed form", "POST", "/api-token-auth/", "application/x-www-form-urlencoded", false, []byte(`username=%zz&password=x`), 400, "invalid"},
		{"token auth 1 MiB + 1", "POST", "/api-token-auth/", js, false, huge(`{}`, 1<<20+1), 413, "too_large"},
		{"token refresh 1 MiB + 1", "POST", "/api-token-refresh/", "application/x-www-form-urlencoded", false, huge(`token=`, 1<<20+1), 413, "too_large"},
		{"token verify text/plain", "POST", "/api-token-verify/", "text/plain", false, []byte(`token=x`), 415, "unsupported_media_type"},

		{"PATCH malformed JSON", "PATCH", "/api/users/1", js, true, []byte(`{`), 400, "invalid"},
		{"PATCH text/plain", "PATCH", "/api/users/1", "text/plain", true, []byte(`{}`), 415, "unsupported_media_type"},
		{"PATCH 1 MiB + 1", "PATCH", "/api/users/1", js, true, huge(`{}`, 1<<20+1), 413, "too_large"},

		{"unknown route", "GET", "/nope", "", false, nil, 404, "not_found"},
		{"unknown API route", "GET", "/api/", "", false, nil, 404, "not_found"},
		{"unknown sub-route", "GET", "/api/users/1/extra", "", true, nil, 404, "not_found"},
		{"unknown route POST", "POST", "/api/groups/", js, false, []byte(`{}`), 404, "not_found"},
		{"double slash", "GET", "//api/users/me", "", false, nil, 404, "not_found"},

		{"GET on token auth", "GET", "/api-token-auth/", "", false, nil, 405, "method_not_allowed"},
		{"PUT on user", "PUT", "/api/users/1", js, true, []byte(`{}`), 405, "method_not_allowed"},
		{"DELETE on list", "DELETE", "/api/users/", "", true, nil, 405, "method_not_allowed"},
		{"POST on me", "POST", "/api/users/me", js, false, []byte(`{}`), 405, "method_not_allowed"},
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			staff := e.createUser(t, "boss", true)
			if staff.ID != 1 {
				t.Fatalf("first user id = %d, want 1 (the PATCH cases target it)", staff.ID)
			}
			staffAuth := "JWT " + e.token(t, staff)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req := fmt.Sprintf("%s %s (%s)", tt.method, tt.path, tt.name)
					auth := ""
					if tt.staff {
						auth = staffAuth
					}
					r := e.rest(t, tt.method, tt.path, tt.contentType, auth, tt.body)
					if r.status != tt.want {
						t.Fatalf("%s = %d, want %d (body %.300s)", req, r.status, tt.want, r.body)
					}
					body := r.object(t, req)
					if tt.wantCode == "" {
						return
					}
					if code := errorCode(t, req, body); code != tt.wantCode {
						t.Errorf("%s error.code = %q, want %q", req, code, tt.wantCode)
					}
					if len(body) != 1 {
						t.Errorf("%s body = %s, want only the \"error\" key", req, r.body)
					}
				})
			}
		})
	}
}

// TestChunkedBodyOverLimit sends an oversized body without Content-Length,
// so the limit must hold while reading, not from the header.
func TestChunkedBodyOverLimit(t *testing.T) {
	e := newEnv(t, "sqlite")
	for _, path := range []string{"/api/users/", "/api-token-auth/"} {
		body := io.MultiReader(strings.NewReader(`{"username":"`), io.LimitReader(zeros{}, 2<<20), strings.NewReader(`"}`))
		r, err := e.send(t, http.MethodPost, path, testenv.Headers("Content-Type", "application/json"), body)
		if err != nil {
			t.Fatalf("POST %s chunked 2 MiB: %v", path, err)
		}
		if r.status != 413 || !strings.Contains(string(r.body), `"too_large"`) {
			t.Errorf("POST %s chunked 2 MiB = %d %.200s, want 413 too_large", path, r.status, r.body)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// TestAccessLogRedactsSecrets runs requests carrying secrets in the query
// string, the Authorization header and the body through a server whose
// logger writes to a buffer: the log has every request but no secret.
func TestAccessLogRedactsSecrets(t *testing.T) {
	var buf testenv.Buffer
	e := newEnv(t, "sqlite", withLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	u := e.createUser(t, "logger", false)
	requests := []struct {
		method, path, auth, contentType string
		body                            string
	}{
		{"GET", "/ws/chat/?token=SECRET1&group=a", "", "", ""},
		{"GET", "/ws/echo/?group=b&token=SECRET2", "", "", ""},
		{"GET", "/api/users/me?token=SECRET3", "Bearer SECRET4", "", ""},
		{"GET", "/api/users/me?%74oken=SECRET5&TOKEN=SECRET6", "JWT SECRET7", "", ""},
		{"GET", "/api/users/?access_token=SECRET8&api_key=SECRET9&jwt=SECRETa&password=SECRETb", "", "", ""},
		{"POST", "/api-token-auth/?token=SECRETc", "", "application/json", `{"username":"logger","password":"SECRETd"}`},
		{"POST", "/api-token-auth/", "", "application/x-www-form-urlencoded", `username=logger&password=password123SECRETe`},
		{"GET", "/nowhere?token=SECRETf", "Bearer SECRETg", "", ""},
	}
	for _, rq := range requests {
		var b []byte
		if rq.body != "" {
			b = []byte(rq.body)
		}
		e.rest(t, rq.method, rq.path, rq.contentType, rq.auth, b)
	}
	// A real token too: neither it nor its signature may appear.
	tok := e.token(t, u)
	if r := e.rest(t, "GET", "/api/users/me?token="+tok, "", "JWT "+tok, nil); r.status != 200 {
		t.Fatalf("GET /api/users/me with a good token = %d, want 200", r.status)
	}
	log := buf.String()
	if strings.Contains(log, "SECRET") {
		t.Errorf("access log contains a secret:\n%s", log)
	}
	for _, part := range strings.Split(tok, ".") {
		if strings.Contains(log, part) {
			t.Errorf("access log contains part %q of a token:\n%s", part, log)
		}
	}
	for _, want := range []string{"/ws/chat/", "group=a", "group=b", "/api/users/me", "/nowhere", "token=REDACTED", "status=401", "status=404"} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "msg=request"); n != len(requests)+1 {
		t.Errorf("access log has %d request lines, want %d:\n%s", n, len(requests)+1, log)
	}
}

// TestDatabaseDownIsInternalError: when the database fails, every endpoint
// answers 500 "internal error", never a 401 (which tells clients to drop a
// good token) and never the driver's message (which names hosts and users).
func TestDatabaseDownIsInternalError(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u, err := e.users.Create(t.Context(), models.NewUser{Username: "staffer", Password: "password123", IsStaff: true})
			if err != nil {
				t.Fatal(err)
			}
			tok := e.token(t, u)
			e.db.SQL.Close()
			tests := []struct {
				method, path, contentType, auth, body string
			}{
				{"GET", "/api/users/me", "", "JWT " + tok, ""},
				{"GET", "/api/users/", "", "JWT " + tok, ""},
				{"POST", "/api-token-auth/", "application/json", "", `{"username":"staffer","password":"password123"}`},
				{"POST", "/api-token-verify/", "application/json", "", `{"token":"` + tok + `"}`},
				{"POST", "/api-token-refresh/", "application/json", "", `{"token":"` + tok + `"}`},
				{"POST", "/api/users/", "application/json", "", `{"username":"newbie","password":"password123"}`},
			}
			for _, tt := range tests {
				req := fmt.Sprintf("%s %s with the database closed", tt.method, tt.path)
				var b []byte
				if tt.body != "" {
					b = []byte(tt.body)
				}
				r := e.rest(t, tt.method, tt.path, tt.contentType, tt.auth, b)
				if r.status != 500 {
					t.Errorf("%s = %d %s, want 500", req, r.status, r.body)
					continue
				}
				body := r.object(t, req)
				if code := errorCode(t, req, body); code != "internal" || !strings.Contains(string(r.body), `"internal error"`) {
					t.Errorf("%s body = %s, want code internal, message \"internal error\"", req, r.body)
				}
			}
		})
	}
}

package handlers_test

import (
	"encoding/json"
	"errors"
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
)

// withUserCache sets how long socket handshakes may reuse a user lookup
// (models.UserStore.CacheRecent; the harness uses the server's 1 s).
func withUserCache(ttl time.Duration) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { d.Users.CacheRecent(ttl) }
}

// TestHandshakeAfterRevocationSeesItAtOnce: socket handshakes may answer
// from a recent lookup of the user, yet every way of deactivating a user
// or revoking tokens is seen by the very next handshake on the process
// that made the change, and one the hub hears of from elsewhere (as
// `switchboard setactive` and other processes tell it) is seen once it is
// heard. The cache here trusts a lookup for a minute, so each step first
// shows that a handshake does come from the cache (a change made behind
// the store's back is not seen), then that the revocation is.
func TestHandshakeAfterRevocationSeesItAtOnce(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withUserCache(time.Minute))
			staff := "JWT " + e.token(t, e.createUser(t, "boss", true))
			u := e.createUser(t, "cached", false)
			tok := e.token(t, u)
			path := fmt.Sprintf("/api/users/%d", u.ID)
			handshake := func(tok string) string { // "welcome" or the close
				conn := e.dial(t, "/ws/chat/?token="+url.QueryEscape(tok))
				defer conn.Close()
				if f := readFrameOrClose(t, conn); f != "" {
					return f
				}
				return "welcome"
			}
			sql := func(q string) {
				t.Helper()
				if err := e.db.Gorm.Exec(q, u.ID).Error; err != nil {
					t.Fatal(err)
				}
			}
			want := func(step, tok, w string) {
				t.Helper()
				if got := handshake(tok); got != w {
					t.Fatalf("%s: handshake = %s, want %s", step, got, w)
				}
			}

			want("first", tok, "welcome") // the lookup is cached from here
			sql("UPDATE users SET is_active = false WHERE id = ?")
			want("deactivated behind the store's back", tok, "welcome") // from the cache
			e.hub.Revoke(u.ID, middleware.ReasonUserInactive)           // as setactive's notice
			want("after the hub's notice", tok, "4003 user inactive")
			sql("UPDATE users SET is_active = true WHERE id = ?")
			want("reactivated behind the store's back", tok, "4003 user inactive") // cached again
			e.hub.Revoke(u.ID, middleware.ReasonUserInactive)
			want("after the notice", tok, "welcome")

			if status, body := e.do(t, http.MethodPatch, path, staff, map[string]any{"is_active": false}); status != 200 {
				t.Fatalf("PATCH is_active=false = %d %v", status, body)
			}
			want("PATCH is_active=false", tok, "4003 user inactive")
			if status, body := e.do(t, http.MethodPatch, path, staff, map[string]any{"is_active": true}); status != 200 {
				t.Fatalf("PATCH is_active=true = %d %v", status, body)
			}
			want("PATCH is_active=true", tok, "welcome")

			sql("UPDATE users SET token_version = token_version + 1 WHERE id = ?")
			want("tokens revoked behind the store's back", tok, "welcome")
			e.hub.RevokeTokens(u.ID, 1) // as another process's notice
			want("after the notice", tok, "4004 token revoked")
			tok = e.token(t, mustGet(t, e, u.ID))
			want("new token", tok, "welcome")

			if status, body := e.do(t, http.MethodPatch, path, staff, map[string]any{"revoke_tokens": true}); status != 200 {
				t.Fatalf("PATCH revoke_tokens = %d %v", status, body)
			}
			want("PATCH revoke_tokens", tok, "4004 token revoked")
			tok = e.token(t, mustGet(t, e, u.ID))
			want("new token", tok, "welcome")

			if status, body := e.do(t, http.MethodPost, "/api/users/me/logout-all", "JWT "+tok, nil); status != 204 {
				t.Fatalf("logout-all = %d %v", status, body)
			}
			want("logout-all", tok, "4004 token revoked")
			tok = e.token(t, mustGet(t, e, u.ID))
			want("new token", tok, "welcome")

			if status, body := e.do(t, http.MethodPost, "/api/users/me/password", "JWT "+tok,
				map[string]any{"old_password": "password123", "new_password": "another-pass-1"}); status != 200 {
				t.Fatalf("password change = %d %v", status, body)
			}
			want("password change", tok, "4004 token revoked")
			tok = e.token(t, mustGet(t, e, u.ID))
			want("new token", tok, "welcome")

			if status, body := e.do(t, http.MethodDelete, path, staff, nil); status != 204 {
				t.Fatalf("DELETE = %d %v", status, body)
			}
			want("DELETE", tok, "4003 user not found")
		})
	}
}

// readFrameOrClose reads the first frame: "" for a welcome, else the
// close as "code reason".
func readFrameOrClose(tb testing.TB, conn *websocket.Conn) string {
	tb.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("%d %s", ce.Code, ce.Text)
	} else if err != nil {
		tb.Fatalf("read: %v", err)
	}
	var f struct{ Type string }
	if json.Unmarshal(b, &f) != nil || f.Type != "welcome" {
		tb.Fatalf("first frame %s, want a welcome", b)
	}
	return ""
}

func mustGet(tb testing.TB, e *env, id int64) *models.User {
	tb.Helper()
	u, err := e.users.Get(tb.Context(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGrowStackForUpgrades: every request reaches the handler behind,
// unchanged, whether it asks for an upgrade (the stack is grown first) or
// not.
func TestGrowStackForUpgrades(t *testing.T) {
	tests := []struct {
		name    string
		upgrade string
	}{
		{"plain GET", ""},
		{"WebSocket upgrade", "websocket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen *http.Request
			h := growStackForUpgrades(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r
				w.WriteHeader(http.StatusTeapot)
			}))
			req := httptest.NewRequest(http.MethodGet, "/ws/chat/?token=x", nil)
			if tt.upgrade != "" {
				req.Header.Set("Upgrade", tt.upgrade)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if seen != req || rec.Code != http.StatusTeapot {
				t.Errorf("GET with Upgrade %q: handler saw %p (want %p), status %d (want %d)", tt.upgrade, seen, req, rec.Code, http.StatusTeapot)
			}
		})
	}
}

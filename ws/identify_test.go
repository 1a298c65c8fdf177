package ws

import (
	"testing"
	"time"
)

// TestIdentifyCatchesARevocationThatLandedFirst: a revocation that reaches
// the hub after a handshake's user lookup began, but before the socket was
// named to the hub, still closes it (it would otherwise find no socket).
func TestIdentifyCatchesARevocationThatLandedFirst(t *testing.T) {
	h := NewHub(NewMemoryBroker())
	cfg := DefaultClientConfig()
	newClient := func() *Client { return &Client{cfg: &cfg} }

	before := time.Now()
	h.CloseRevoked(7, 2) // logout-all: version 2 from now on
	h.CloseUser(8, CloseReason{CodeForbidden, "user inactive"})
	after := time.Now()

	tests := []struct {
		name     string
		user     int64
		version  int64
		lookedUp time.Time
		want     CloseReason
		ok       bool
	}{
		{"token from before logout-all", 7, 1, before, CloseTokenRevoked, false},
		{"token from before logout-all, looked up after", 7, 0, after, CloseTokenRevoked, false},
		{"fresh token", 7, 2, before, CloseReason{}, true},
		{"deactivated during the lookup", 8, 0, before, CloseReason{CodeForbidden, "user inactive"}, false},
		{"looked up after the deactivation (so it saw it)", 8, 0, after.Add(time.Millisecond), CloseReason{}, true},
		{"another user", 9, 0, before, CloseReason{}, true},
	}
	for _, tt := range tests {
		got, ok := h.Identify(newClient(), tt.user, "u", tt.version, tt.lookedUp)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: Identify = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

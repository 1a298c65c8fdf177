package ws

import (
	"context"
	"encoding/json"
)

// controlEvent is a message on ControlChannel.
type controlEvent struct {
	Type    string `json:"type"` // "revoke" or "revoke_tokens"
	UserID  int64  `json:"user_id"`
	Reason  string `json:"reason,omitempty"`  // revoke
	Version int64  `json:"version,omitempty"` // revoke_tokens: the user's new token version
}

// Revoke closes every socket of userID, in every process, with 4003 and
// reason. Every broker delivers to this process before it returns, so the
// local sockets close even with Redis down; the other processes hear it
// through ControlChannel.
func (h *Hub) Revoke(userID int64, reason string) {
	// Best effort: with the channel layer down, other processes still
	// refuse the user's token on its next use.
	_ = h.RevokeErr(context.Background(), userID, reason)
}

// RevokeErr is Revoke, reporting whether the other processes were told.
func (h *Hub) RevokeErr(ctx context.Context, userID int64, reason string) error {
	return PublishRevoke(ctx, h.broker, userID, reason)
}

// RevokeTokens closes, on every process, userID's sockets whose token
// version is below version (4004 "token revoked"). Like Revoke, this
// process's sockets close even with the channel layer down.
func (h *Hub) RevokeTokens(userID, version int64) {
	payload := Encode(controlEvent{Type: "revoke_tokens", UserID: userID, Version: version})
	_ = h.broker.Publish(context.Background(), ControlChannel, Message{Payload: payload})
}

// PublishRevoke tells every process on b to close userID's sockets with
// 4003 and reason. It needs no hub: `switchboard setactive` calls it on a
// broker of its own.
func PublishRevoke(ctx context.Context, b Broker, userID int64, reason string) error {
	payload := Encode(controlEvent{Type: "revoke", UserID: userID, Reason: reason})
	return b.Publish(ctx, ControlChannel, Message{Payload: payload})
}

func (h *Hub) handleControl(msg Message) {
	var ev controlEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return
	}
	switch {
	case ev.UserID == 0:
	case ev.Type == "revoke":
		h.CloseUser(ev.UserID, CloseReason{CodeForbidden, ev.Reason})
	case ev.Type == "revoke_tokens":
		h.CloseRevoked(ev.UserID, ev.Version)
	}
}

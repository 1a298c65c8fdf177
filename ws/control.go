package ws

import (
	"context"
	"encoding/json"
)

// controlEvent is a message on ControlChannel.
type controlEvent struct {
	Type   string `json:"type"` // "revoke"
	UserID int64  `json:"user_id"`
	Reason string `json:"reason"`
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
	if ev.Type == "revoke" && ev.UserID != 0 {
		h.CloseUser(ev.UserID, CloseReason{CodeForbidden, ev.Reason})
	}
}

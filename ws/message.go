package ws

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Channel names inside the channel layer. Groups and status keys live in
// separate namespaces so a group called "status:x" cannot reach status
// subscribers; Control carries process-to-process events.
const (
	groupPrefix  = "g:"
	statusPrefix = "s:"
	// ControlChannel carries events every process acts on (revocation).
	ControlChannel = "ctl"
)

// GroupChannel is the channel of a chat or publish group.
func GroupChannel(group string) string { return groupPrefix + group }

// StatusChannel is the channel of a live status key.
func StatusChannel(key string) string { return statusPrefix + key }

// ChatGroup is the group a user's chat socket joins: "chat-" and the first
// character (not byte) of the username, case kept.
func ChatGroup(username string) string {
	r, _ := utf8.DecodeRuneInString(username)
	return "chat-" + string(r)
}

// MaxNameLength bounds group names and status keys.
const MaxNameLength = 100

// ValidName is the one definition of a valid group name or status key:
// 1–100 characters of Unicode letters, digits and - _ . : @ +. It admits
// every group ChatGroup can make from a valid username (usernames allow
// letters, digits and @ . + - _), so "chat-+" and "chat-@" work in the
// group APIs too.
func ValidName(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxNameLength {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("-_.:@+", r) {
			return false
		}
	}
	return true
}

// FormatTS formats t as the "ts" of every frame: RFC 3339 with fractional
// seconds, UTC.
func FormatTS(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// The "type" of presence frames.
const (
	PresenceJoin  = "join"
	PresenceLeave = "leave"
	// PresenceType is the "type" of PresenceCount and PresenceList.
	PresenceType = "presence"
)

// A group's presence mode: join/leave frames, or a rate-limited count.
const (
	PresenceModeEvents = "events"
	PresenceModeCount  = "count"
)

// Frames the server sends. Each is encoded once per message.
type (
	Welcome struct {
		Type  string `json:"type"` // "welcome"
		User  string `json:"user"`
		Group string `json:"group"`
		Exp   int64  `json:"exp,omitempty"` // the token's expiry, unix seconds
		// With history on: the group's epoch and its latest offset when
		// the member joined, and, when the member asked to recover
		// (?since=), whether every missed message follows (all or none).
		Epoch     string  `json:"epoch,omitempty"`
		Offset    *uint64 `json:"offset,omitempty"`
		Recovered *bool   `json:"recovered,omitempty"`
		// Presence is the group's presence mode when the member joined,
		// PresenceModeEvents or PresenceModeCount (empty with
		// PRESENCE_EVENTS=off); in count mode Count is the count the
		// members were last sent.
		Presence string `json:"presence,omitempty"`
		Count    *int   `json:"count,omitempty"`
	}
	ChatMessage struct {
		Type  string `json:"type"` // "message"
		Group string `json:"group"`
		User  string `json:"user"`
		Text  string `json:"text"`
		TS    string `json:"ts"`
		// Offset is the message's place in its group's history (history
		// on): it grows by exactly 1 per message.
		Offset uint64 `json:"offset,omitempty"`
		// ID is the sender's own id for its message (switchboard.v1),
		// only in the sender's copy.
		ID string `json:"id,omitempty"`
	}
	// Refreshed answers a switchboard.v1 refresh (and an auth frame on an
	// already authenticated socket).
	Refreshed struct {
		Type string `json:"type"` // "refreshed"
		Exp  int64  `json:"exp"`  // unix seconds
	}
	// ErrorFrame answers a switchboard.v1 frame the server cannot use; the
	// socket stays open.
	ErrorFrame struct {
		Type   string `json:"type"` // "error"
		Reason string `json:"reason"`
	}
	PresenceEvent struct {
		Type string `json:"type"` // PresenceJoin or PresenceLeave
		User string `json:"user"`
	}
	// PresenceCount switches a group to count mode, and then carries its
	// count at most once per PRESENCE_COUNT_INTERVAL while it changes.
	PresenceCount struct {
		Type  string `json:"type"` // "presence"
		Mode  string `json:"mode"` // PresenceModeCount
		Count int    `json:"count"`
	}
	// PresenceList switches a group back to events mode with the users
	// online; join and leave frames follow again.
	PresenceList struct {
		Type  string   `json:"type"` // "presence"
		Mode  string   `json:"mode"` // PresenceModeEvents
		Users []string `json:"users"`
	}
	Publish struct {
		Type   string          `json:"type"` // "publish"
		Group  string          `json:"group"`
		Data   json.RawMessage `json:"data"`
		TS     string          `json:"ts"`
		Offset uint64          `json:"offset,omitempty"` // as ChatMessage.Offset
	}
	Status struct {
		Type    string          `json:"type"` // "status"
		Key     string          `json:"key"`
		Value   json.RawMessage `json:"value"`
		Version uint64          `json:"version"`
		TS      string          `json:"ts"`
	}
)

// Encode marshals a frame struct; the types above cannot fail to encode.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: encode frame: " + err.Error())
	}
	return b
}

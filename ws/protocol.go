package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Subprotocol is the versioned JSON protocol a client asks for with
// Sec-WebSocket-Protocol (RFC 6455 §1.9, §11.3.4). Without it a socket
// speaks the legacy protocol: every text frame is chat text.
const Subprotocol = "switchboard.v1"

// Client frame types of switchboard.v1.
const (
	FrameAuth    = "auth"    // {"type":"auth","token":"<JWT>"}: first frame when no ?token=
	FrameMessage = "message" // {"type":"message","text":"…","id":"<optional client id>"}
	FrameRefresh = "refresh" // {"type":"refresh","token":"<JWT>"}: replace the socket's token
)

// MaxClientIDLength bounds the id a client gives its message.
const MaxClientIDLength = 100

// ClientFrame is one switchboard.v1 frame from a client.
type ClientFrame struct {
	Type  string
	Token string // auth, refresh
	Text  string // message
	ID    string // message, optional
}

// ParseClientFrame decodes a switchboard.v1 client frame: a JSON object
// with a string "type" and, by type, the fields above (strings). Unknown
// fields are ignored, as JSON protocols usually do. The error is the
// reason sent back in an error frame: short, safe to show, and under the
// 123 bytes a close reason could hold.
func ParseClientFrame(b []byte) (ClientFrame, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return ClientFrame{}, errors.New("malformed frame: want a JSON object")
	}
	// Only whitespace may follow the object (dec.More would let a stray
	// "}" or "]" through).
	if _, err := dec.Token(); err != io.EOF {
		return ClientFrame{}, errors.New("malformed frame: trailing data")
	}
	var f ClientFrame
	str := func(key string, required bool) (string, error) {
		v, ok := raw[key]
		if !ok {
			if required {
				return "", fmt.Errorf("malformed %s frame: %q is required", f.Type, key)
			}
			return "", nil
		}
		// null would unmarshal into "" without an error: only a JSON
		// string is a string.
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return "", fmt.Errorf("malformed frame: %q must be a string", key)
		}
		return s, nil
	}
	var err error
	if f.Type, err = str("type", true); err != nil {
		return ClientFrame{}, errors.New(`malformed frame: "type" must be a string`)
	}
	switch f.Type {
	case FrameAuth, FrameRefresh:
		f.Token, err = str("token", true)
	case FrameMessage:
		if f.Text, err = str("text", true); err == nil {
			f.ID, err = str("id", false)
			if err == nil && utf8.RuneCountInString(f.ID) > MaxClientIDLength {
				err = fmt.Errorf("malformed message frame: id longer than %d characters", MaxClientIDLength)
			}
		}
	default:
		// The type is echoed only while the reason stays short: quoting
		// can make a 32-byte type four times longer (control characters).
		if q := strconv.Quote(f.Type); len(f.Type) <= 32 && len(q) <= 64 && utf8.ValidString(f.Type) {
			return ClientFrame{}, errors.New("unknown frame type " + q)
		}
		return ClientFrame{}, errors.New("unknown frame type")
	}
	if err != nil {
		return ClientFrame{}, err
	}
	return f, nil
}

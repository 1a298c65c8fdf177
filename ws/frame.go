package ws

import (
	"encoding/binary"
	"unicode/utf8"
)

// Frame is one complete, unmasked server-to-client WebSocket frame (header
// and payload). A broadcast builds its frame once and every member's writer
// sends the same bytes, so fan-out costs no encoding per member.
type Frame []byte

const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
	finBit   = 0x80
)

// TextFrame returns the frame for one text message.
func TextFrame(payload []byte) Frame { return makeFrame(opText, payload) }

func makeFrame(op byte, payload []byte) Frame {
	n := len(payload)
	var f []byte
	switch {
	case n < 126:
		f = make([]byte, 2, 2+n)
		f[1] = byte(n)
	case n <= 0xFFFF:
		f = make([]byte, 4, 4+n)
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = make([]byte, 10, 10+n)
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	f[0] = finBit | op
	return append(f, payload...)
}

// closeFrame returns a close frame carrying code and reason, the reason cut
// to fit a control frame.
func closeFrame(code int, reason string) Frame {
	for len(reason) > 123 || !utf8.ValidString(reason) {
		reason = reason[:len(reason)-1] // never split a character
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return makeFrame(opClose, append(p, reason...))
}

var pingFrame = makeFrame(opPing, nil)

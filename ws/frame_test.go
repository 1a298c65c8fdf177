package ws

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTextFrameLengthEncodings(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte("a"), n)
		f := TextFrame(payload)
		typ, got, err := decodeFrame(f)
		if err != nil || typ != opText || !bytes.Equal(got, payload) {
			t.Errorf("TextFrame(%d bytes) decodes to op %d, %d bytes, %v", n, typ, len(got), err)
		}
	}
}

// decodeFrame is a minimal RFC 6455 reader for unmasked server frames.
func decodeFrame(f []byte) (byte, []byte, error) {
	if len(f) < 2 || f[0]&0x80 == 0 || f[1]&0x80 != 0 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	op := f[0] & 0x0F
	n, hdr := uint64(f[1]&0x7F), 2
	switch n {
	case 126:
		n, hdr = uint64(f[2])<<8|uint64(f[3]), 4
	case 127:
		n = 0
		for i := 2; i < 10; i++ {
			n = n<<8 | uint64(f[i])
		}
		hdr = 10
	}
	if uint64(len(f)-hdr) != n {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return op, f[hdr:], nil
}

func TestCloseFrameKeepsReasonValidUTF8(t *testing.T) {
	reason := strings.Repeat("é", 100) // 200 bytes
	f := closeFrame(4003, reason)
	op, p, err := decodeFrame(f)
	if err != nil || op != opClose {
		t.Fatalf("close frame: op %d, %v", op, err)
	}
	if len(p) > 125 || !utf8.Valid(p[2:]) || int(p[0])<<8|int(p[1]) != 4003 {
		t.Fatalf("close payload %d bytes, valid utf-8 %v, code %d", len(p), utf8.Valid(p[2:]), int(p[0])<<8|int(p[1]))
	}
}

func FuzzReadLimited(f *testing.F) {
	f.Add([]byte("hello"), int64(3))
	f.Add([]byte{}, int64(0))
	f.Add(bytes.Repeat([]byte("x"), 100), int64(100))
	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		if max < 0 || max > 1<<20 {
			return
		}
		got, err := readLimited(bytes.NewReader(data), max)
		if int64(len(data)) > max {
			if err != errTooBig {
				t.Fatalf("readLimited(%d bytes, %d) = %v, want errTooBig", len(data), max, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("readLimited(%d bytes, %d) = %d bytes, %v", len(data), max, len(got), err)
		}
	})
}

func FuzzDecodeWire(f *testing.F) {
	f.Add("abcd|12|{\"type\":\"message\"}")
	f.Add("||")
	f.Add("x|18446744073709551616|p")
	f.Add("no separators")
	f.Fuzz(func(t *testing.T, s string) {
		node, msg, ok := decodeWire(s) // must never panic
		if !ok {
			return
		}
		b := &RedisBroker{conn: &RedisConn{node: node}}
		if again := b.encode(msg); string(again) != s && !strings.HasPrefix(s, node+"|0") {
			// Round trip holds for canonical sequence numbers.
			if _, m2, ok2 := decodeWire(string(again)); !ok2 || m2.Seq != msg.Seq || !bytes.Equal(m2.Payload, msg.Payload) {
				t.Fatalf("decode(encode(%q)) mismatch", s)
			}
		}
	})
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"chat-a", "chat-é", "a:b.c_d", "", "bad group", strings.Repeat("x", 101), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidName(s) {
			return
		}
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxNameLength || s == "" || strings.ContainsAny(s, " /?#%\x00") {
			t.Fatalf("ValidName(%q) = true", s)
		}
	})
}

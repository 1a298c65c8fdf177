package ws

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxReason is the longest reason a close frame can carry (125 bytes of
// control payload minus the 2-byte code); error frame reasons keep to it.
const maxReason = 123

var parseClientFrameTests = []struct {
	name string
	in   string
	want ClientFrame // zero: an error is wanted
}{
	{"auth", `{"type":"auth","token":"a.b.c"}`, ClientFrame{Type: FrameAuth, Token: "a.b.c"}},
	{"refresh", `{"type":"refresh","token":"a.b.c"}`, ClientFrame{Type: FrameRefresh, Token: "a.b.c"}},
	{"message", `{"type":"message","text":"hi"}`, ClientFrame{Type: FrameMessage, Text: "hi"}},
	{"message with id", `{"type":"message","text":"hi","id":"c1"}`, ClientFrame{Type: FrameMessage, Text: "hi", ID: "c1"}},
	{"empty text", `{"type":"message","text":""}`, ClientFrame{Type: FrameMessage}},
	{"unknown fields ignored", `{"type":"message","text":"hi","extra":{"a":[1]},"token":"t"}`, ClientFrame{Type: FrameMessage, Text: "hi"}},
	{"whitespace around", " \n{\"type\" : \"auth\", \"token\":\"t\"}\t\r\n ", ClientFrame{Type: FrameAuth, Token: "t"}},
	{"escapes", `{"type":"message","text":"\u00e9\n\"<b>\"","id":"\ud83d\ude00"}`, ClientFrame{Type: FrameMessage, Text: "é\n\"<b>\"", ID: "😀"}},
	{"id of 100 characters", `{"type":"message","text":"x","id":"` + strings.Repeat("é", MaxClientIDLength) + `"}`, ClientFrame{Type: FrameMessage, Text: "x", ID: strings.Repeat("é", MaxClientIDLength)}},
	{"empty token", `{"type":"auth","token":""}`, ClientFrame{Type: FrameAuth}},

	{"empty", ``, ClientFrame{}},
	{"not JSON", `hello`, ClientFrame{}},
	{"array", `[{"type":"auth","token":"t"}]`, ClientFrame{}},
	{"null", `null`, ClientFrame{}},
	{"string", `"auth"`, ClientFrame{}},
	{"no type", `{"token":"t"}`, ClientFrame{}},
	{"type null", `{"type":null}`, ClientFrame{}},
	{"type number", `{"type":1}`, ClientFrame{}},
	{"unknown type", `{"type":"subscribe"}`, ClientFrame{}},
	{"type is case-sensitive", `{"type":"Auth","token":"t"}`, ClientFrame{}},
	{"key is case-sensitive", `{"TYPE":"auth","token":"t"}`, ClientFrame{}},
	{"control characters in type", `{"type":"` + strings.Repeat(`\u0001`, 32) + `"}`, ClientFrame{}},
	{"long type", `{"type":"` + strings.Repeat("é", 300) + `"}`, ClientFrame{}},
	{"missing token", `{"type":"auth"}`, ClientFrame{}},
	{"token null", `{"type":"refresh","token":null}`, ClientFrame{}},
	{"token number", `{"type":"refresh","token":1}`, ClientFrame{}},
	{"missing text", `{"type":"message","id":"x"}`, ClientFrame{}},
	{"text null", `{"type":"message","text":null}`, ClientFrame{}},
	{"text object", `{"type":"message","text":{}}`, ClientFrame{}},
	{"id null", `{"type":"message","text":"x","id":null}`, ClientFrame{}},
	{"id number", `{"type":"message","text":"x","id":1}`, ClientFrame{}},
	{"id of 101 characters", `{"type":"message","text":"x","id":"` + strings.Repeat("i", MaxClientIDLength+1) + `"}`, ClientFrame{}},
	{"two objects", `{"type":"auth","token":"t"}{"type":"auth","token":"u"}`, ClientFrame{}},
	{"trailing brace", `{"type":"auth","token":"t"}}`, ClientFrame{}},
	{"trailing bracket", `{"type":"auth","token":"t"}]`, ClientFrame{}},
	{"trailing comma", `{"type":"auth","token":"t"},`, ClientFrame{}},
	{"trailing number", `{"type":"auth","token":"t"} 1`, ClientFrame{}},
	{"truncated", `{"type":"auth","token":"t"`, ClientFrame{}},
}

func TestParseClientFrame(t *testing.T) {
	for _, tt := range parseClientFrameTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientFrame([]byte(tt.in))
			if tt.want == (ClientFrame{}) {
				if err == nil {
					t.Fatalf("ParseClientFrame(%q) = %+v, nil; want an error", tt.in, got)
				}
				checkReason(t, tt.in, err)
				if got != (ClientFrame{}) {
					t.Errorf("ParseClientFrame(%q) = %+v with error %q; want a zero frame", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseClientFrame(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// checkReason checks an error is a reason fit for an error frame and a
// close frame: non-empty, valid UTF-8, at most 123 bytes.
func checkReason(t *testing.T, in string, err error) {
	t.Helper()
	r := err.Error()
	if r == "" || len(r) > maxReason || !utf8.ValidString(r) {
		t.Errorf("ParseClientFrame(%q) error %q (%d bytes): want 1–%d bytes of UTF-8", in, r, len(r), maxReason)
	}
}

// encodeClientFrame is what a client sends for f: the type's fields only,
// id only when set.
func encodeClientFrame(f ClientFrame) []byte {
	m := map[string]string{"type": f.Type}
	switch f.Type {
	case FrameAuth, FrameRefresh:
		m["token"] = f.Token
	case FrameMessage:
		m["text"] = f.Text
		if f.ID != "" {
			m["id"] = f.ID
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzParseClientFrame: ParseClientFrame never panics; an error is a
// short reason (≤ 123 bytes, UTF-8); an accepted frame came from one JSON
// object, has a known type, holds exactly the fields its type defines, as
// an independent decoder reads them, and round-trips: re-encoding and
// parsing it again gives the same frame.
func FuzzParseClientFrame(f *testing.F) {
	for _, tt := range parseClientFrameTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(`{"type":"message","text":"a","type":"auth","token":"t"}`))
	f.Add([]byte("{\"type\":\"message\",\"text\":\"\xff\xfe\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseClientFrame(b)
		if err != nil {
			checkReason(t, string(b), err)
			return
		}
		if !json.Valid(b) {
			t.Fatalf("ParseClientFrame(%q) accepted input that is not one JSON value: %+v", b, got)
		}
		var raw map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatalf("ParseClientFrame(%q) accepted input that is not a JSON object: %v", b, err)
		}
		field := func(k string) string { s, _ := raw[k].(string); return s }
		if raw["type"] != got.Type {
			t.Fatalf("ParseClientFrame(%q).Type = %q; the object's type is %#v", b, got.Type, raw["type"])
		}
		switch got.Type {
		case FrameAuth, FrameRefresh:
			if _, ok := raw["token"].(string); !ok || got.Token != field("token") || got.Text != "" || got.ID != "" {
				t.Fatalf("ParseClientFrame(%q) = %+v; want only the token %#v", b, got, raw["token"])
			}
		case FrameMessage:
			if _, ok := raw["text"].(string); !ok || got.Text != field("text") || got.ID != field("id") || got.Token != "" {
				t.Fatalf("ParseClientFrame(%q) = %+v; want text %#v and id %#v only", b, got, raw["text"], raw["id"])
			}
			if id, present := raw["id"]; present {
				if _, ok := id.(string); !ok {
					t.Fatalf("ParseClientFrame(%q) accepted a non-string id %#v", b, id)
				}
			}
			if n := utf8.RuneCountInString(got.ID); n > MaxClientIDLength {
				t.Fatalf("ParseClientFrame(%q) accepted an id of %d characters", b, n)
			}
		default:
			t.Fatalf("ParseClientFrame(%q) accepted unknown type %q", b, got.Type)
		}
		enc := encodeClientFrame(got)
		again, err := ParseClientFrame(enc)
		if err != nil || again != got {
			t.Fatalf("round trip of %+v through %s = %+v, %v", got, enc, again, err)
		}
	})
}

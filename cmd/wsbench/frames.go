package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// The server's frames all start with {"type":"…": the type's first byte
// after this prefix tells them apart without decoding the JSON.
var typePrefix = []byte(`{"type":"`)

// frameKind classifies a server frame by the first letter of its type.
func frameKind(frame []byte) byte {
	if len(frame) <= len(typePrefix) || !bytes.HasPrefix(frame, typePrefix) {
		return 0
	}
	return frame[len(typePrefix)]
}

// isPresence tells a presence frame ({"type":"presence"}: the count mode
// above PRESENCE_EVENTS_MAX, and the switch back to events) from a publish
// frame, which starts with the same letter.
func isPresence(frame []byte) bool {
	return bytes.HasPrefix(frame, presencePrefix)
}

var presencePrefix = []byte(`{"type":"presence"`)

var (
	keyText  = []byte(`"text":"`)
	keyData  = []byte(`"data":"`)
	keyGroup = []byte(`"group":"`)
)

// stringField returns the value of the first string field key (given as
// `"name":"`) in frame. On the hot path it is a byte scan returning a
// slice of frame; a value with escapes is decoded properly (rare: our
// texts never need escaping).
func stringField(frame, key []byte) ([]byte, bool) {
	i := bytes.Index(frame, key)
	if i < 0 {
		return nil, false
	}
	start := i + len(key)
	for j := start; j < len(frame); j++ {
		switch frame[j] {
		case '"':
			return frame[start:j], true
		case '\\':
			return slowStringField(frame, key)
		}
	}
	return nil, false
}

func slowStringField(frame, key []byte) ([]byte, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, false
	}
	name := string(key[1 : len(key)-3]) // `"text":"` → text
	var s string
	if err := json.Unmarshal(m[name], &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// appendText appends a benchmark message text: "<sender>|<seq>|<unix ns>".
// Sender names never contain '|' (usernames allow letters, digits and
// @.+-_ only), and the text needs no JSON escaping.
func appendText(b []byte, sender string, seq int, unixNano int64) []byte {
	b = append(b, sender...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '|')
	return strconv.AppendInt(b, unixNano, 10)
}

// parseText splits a text made by appendText. It does not allocate.
func parseText(t []byte) (sender []byte, seq int, unixNano int64, ok bool) {
	i := bytes.IndexByte(t, '|')
	if i <= 0 {
		return nil, 0, 0, false
	}
	sender, rest := t[:i], t[i+1:]
	j := bytes.IndexByte(rest, '|')
	if j <= 0 {
		return nil, 0, 0, false
	}
	s, ok1 := atoi(rest[:j])
	ts, ok2 := atoi(rest[j+1:])
	if !ok1 || !ok2 || s > 1<<31-1 {
		return nil, 0, 0, false
	}
	return sender, int(s), ts, true
}

// atoi parses a non-negative decimal that fits an int64.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

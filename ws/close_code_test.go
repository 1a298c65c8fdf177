package ws

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/gorilla/websocket"
)

// TestCloseCodeOfReadError: a read error that ends a socket is counted
// under 1002 when gorilla failed the connection with its own protocol-error
// close (a plain error), and under 1006 when the connection just dropped.
func TestCloseCodeOfReadError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"gorilla's unexpected EOF", &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}, 1006},
		{"peer close code", &websocket.CloseError{Code: 4000}, 4000},
		{"EOF while skipping a frame", io.EOF, 1006},
		{"unexpected EOF", io.ErrUnexpectedEOF, 1006},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, 1006},
		{"pong timeout", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), 1006},
		{"negative 64-bit length", websocket.ErrReadLimit, 1006},
		{"bad opcode", errors.New("websocket: bad opcode 3"), 1002},
		{"RSV and mask", errors.New("websocket: RSV2 set, bad MASK"), 1002},
		{"control frame too long", errors.New("websocket: len > 125 for control"), 1002},
	}
	for _, tt := range tests {
		if got := readErrorCode(tt.err); got != tt.want {
			t.Errorf("readErrorCode(%s: %v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

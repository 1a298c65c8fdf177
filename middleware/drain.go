package middleware

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Bounds of the lingering read of an unread request body (nginx's
// lingering close).
const (
	DrainMaxBytes = 16 << 20
	DrainTimeout  = 5 * time.Second
)

// DrainUnreadBody makes an answer reach a client that is still sending its
// body: the 413 for a body over the limit (the handler stopped reading at
// the limit), and just as much a 401, 404 or 405 given without reading the
// body at all. Were the connection closed with the rest of the body still
// arriving, the client's TCP stack would get a reset, and many clients
// (Python's urllib, for one) fail while writing and never read the answer.
// So once the handler has answered, the answer is flushed and the rest of
// the body is read and discarded, up to DrainMaxBytes or DrainTimeout,
// whichever comes first; beyond that the client may be cut off. A body
// read to its end leaves the connection usable. Handlers that read their
// body to the end (every accepted request) cost nothing more.
func DrainUnreadBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" {
			c.Next()
			return
		}
		body := &eofReader{ReadCloser: r.Body}
		r.Body = body
		c.Next()
		if body.eof || (body.n == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue")) {
			// Read to the end; or never read, so no 100 Continue went out
			// and the client will not send the body.
			return
		}
		c.Writer.Flush()
		rc := http.NewResponseController(c.Writer)
		if err := rc.SetReadDeadline(time.Now().Add(DrainTimeout)); err != nil {
			return // no deadline possible (not a net/http connection): no drain either
		}
		if _, err := io.CopyN(io.Discard, body, DrainMaxBytes); err == io.EOF {
			// The whole body is in: the connection stays usable, under
			// net/http's own deadlines again.
			_ = rc.SetReadDeadline(time.Time{})
		}
	}
}

// eofReader notes how much of a request body was read and whether its end
// was reached.
type eofReader struct {
	io.ReadCloser
	n   int64
	eof bool
}

func (b *eofReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

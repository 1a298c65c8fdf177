package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
)

type headKey struct{}

// HeadAsGet answers HEAD on every GET route (RFC 9110 §9.3.2), including
// routes added later, because it sits in front of the router: a HEAD
// request is routed as a GET, the handler's body is counted and dropped,
// and the response carries GET's status and headers with the
// Content-Length of the body GET would have sent. The upgrade headers of a
// HEAD are removed first, so a WebSocket route answers it as a GET without
// them (400 from the upgrader) and never upgrades. Method reports the
// method the client sent.
func HeadAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		g := r.Clone(context.WithValue(r.Context(), headKey{}, true))
		g.Method = http.MethodGet
		g.Header.Del("Upgrade")
		g.Header.Del("Connection")
		hw := &headWriter{ResponseWriter: w}
		next.ServeHTTP(hw, g)
		hw.finish()
	})
}

// Method is the request's method as the client sent it: HEAD for a HEAD
// that HeadAsGet routes as a GET.
func Method(r *http.Request) string {
	if head, _ := r.Context().Value(headKey{}).(bool); head {
		return http.MethodHead
	}
	return r.Method
}

// headWriter holds back the status line until the handler returns, so it
// can add the Content-Length of the body it counted and dropped. The
// headers are those at the handler's first WriteHeader or Write, as
// net/http would have sent them.
type headWriter struct {
	http.ResponseWriter
	status int
	header http.Header // snapshot at the first WriteHeader/Write
	n      int64
}

func (w *headWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // 1xx interim responses are not repeated for HEAD
	}
	w.status = code
	w.header = w.ResponseWriter.Header().Clone()
}

func (w *headWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += int64(len(p))
	return len(p), nil
}

// Flush does nothing: nothing is sent before the handler returns.
func (w *headWriter) Flush() {}

// Hijack refuses: a HEAD is never upgraded.
func (w *headWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("head request cannot be hijacked")
}

// Unwrap lets http.ResponseController reach the connection.
func (w *headWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *headWriter) finish() {
	w.WriteHeader(http.StatusOK)
	h := w.ResponseWriter.Header()
	for k := range h {
		delete(h, k)
	}
	for k, v := range w.header {
		h[k] = v
	}
	if h.Get("Content-Length") == "" && h.Get("Transfer-Encoding") == "" &&
		w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		h.Set("Content-Length", strconv.FormatInt(w.n, 10))
	}
	w.ResponseWriter.WriteHeader(w.status)
}

package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// client bounds every request the tests send.
var client = &http.Client{Timeout: 10 * time.Second}

// Response is one HTTP answer, read whole.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Request *http.Request // as sent (its body consumed), for checks of the pair
}

// Headers builds a header from name, value pairs, leaving out empty values:
// Headers("Content-Type", ct, "Authorization", auth).
func Headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

// Send sends a request to url within 10 s and reads the whole answer.
// body is nil or a nil []byte (none), a []byte or string (sent as is), an
// io.Reader (streamed, so without a Content-Length) or any other value
// (JSON-encoded, with Content-Type application/json unless header has
// one). header may be nil. The error is the client's: the server never
// answered, or the request could not be sent.
func Send(method, url string, header http.Header, body any) (Response, error) {
	var r io.Reader
	jsonBody := false
	switch b := body.(type) {
	case nil:
	case []byte:
		if b != nil {
			r = bytes.NewReader(b)
		}
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return Response{}, fmt.Errorf("encode %s %s body: %w", method, url, err)
		}
		r, jsonBody = bytes.NewReader(enc), true
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return Response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if jsonBody && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw, Request: req}, nil
}

// ErrExited is WaitHealthy's error when the server stopped first.
var ErrExited = errors.New("server exited before it was healthy")

// WaitHealthy polls url (a server's /healthz) until it answers 200, for at
// most d. It gives up early, with an error wrapping ErrExited and the exit
// error, when exited (nil: never) receives: the server process stopped.
func WaitHealthy(url string, d time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(d)
	for {
		if r, err := Send(http.MethodGet, url, nil, nil); err == nil && r.Status == http.StatusOK {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", ErrExited, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s not 200 within %s", url, d)
		}
	}
}

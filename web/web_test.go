package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFileServer(t *testing.T) {
	srv := http.FileServer(http.FS(Files()))
	tests := []struct {
		path     string
		wantType string
		wantBody string
	}{
		{"/", "text/html", `<script src="app.js" defer></script>`},
		{"/app.js", "javascript", "'use strict';"}, // text/ or application/javascript, per the system's mime.types
		{"/style.css", "text/css", ":root"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d, want %d", tt.path, rec.Code, http.StatusOK)
			}
			if got := rec.Header().Get("Content-Type"); !strings.Contains(got, tt.wantType) {
				t.Errorf("GET %s Content-Type = %q, want %q", tt.path, got, tt.wantType)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET %s body does not contain %q", tt.path, tt.wantBody)
			}
		})
	}
}

// TestPageIDs guards the ids that the browser tests select.
func TestPageIDs(t *testing.T) {
	page := readFile(t, "index.html")
	ids := []string{
		"register-form", "login-form", "username", "password", "email", "show-register", "show-login",
		"chat", "group-name", "me", "logout", "online", "messages", "message-input", "conn-status",
		"close-reason", "status-panel", "status-key", "status-value", "status-version", "status-changed",
	}
	for _, id := range ids {
		if n := strings.Count(page, `id="`+id+`"`); n != 1 {
			t.Errorf("index.html has id %q %d times, want 1", id, n)
		}
	}
}

// TestSafeRendering keeps user text out of HTML parsing and the page free of
// external downloads.
func TestSafeRendering(t *testing.T) {
	tests := []struct {
		file      string
		forbidden []string
	}{
		{"app.js", []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "http://", "https://"}},
		{"index.html", []string{"http://", "https://", `src="//`, `href="//`, "<script>", "style="}},
		{"style.css", []string{"http://", "https://", "@import", "url("}},
	}
	for _, tt := range tests {
		body := readFile(t, tt.file)
		for _, s := range tt.forbidden {
			if strings.Contains(body, s) {
				t.Errorf("%s contains %q", tt.file, s)
			}
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Files(), name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

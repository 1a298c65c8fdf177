package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func newSite(t *testing.T) *Site {
	t.Helper()
	s, err := NewSite(Files())
	if err != nil {
		t.Fatalf("NewSite(Files()): %v", err)
	}
	return s
}

// pageFiles lists every file embedded in the page.
func pageFiles(t *testing.T) []string {
	t.Helper()
	var names []string
	err := fs.WalkDir(Files(), ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk Files(): %v", err)
	}
	return names
}

func get(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSite(t *testing.T) {
	site := newSite(t)
	tests := []struct {
		path     string
		wantType string
		wantBody string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/index.html", "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/app.js", "text/javascript; charset=utf-8", "from './switchboard.js'"},
		{"/switchboard.js", "text/javascript; charset=utf-8", "export class Switchboard"},
		{"/ui/chat.js", "text/javascript; charset=utf-8", "export function startChat"},
		{"/style.css", "text/css; charset=utf-8", ":root"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := get(site, http.MethodGet, tt.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d, want %d", tt.path, rec.Code, http.StatusOK)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("GET %s Content-Type = %q, want %q", tt.path, got, tt.wantType)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET %s body does not contain %q", tt.path, tt.wantBody)
			}
		})
	}
}

// TestSiteServesEveryFile checks that every embedded file is listed and
// served at its path with the Content-Type of its extension, so adding a
// file to web/ needs no route.
func TestSiteServesEveryFile(t *testing.T) {
	site := newSite(t)
	paths := site.Paths()
	wantTypes := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
	}
	names := pageFiles(t)
	for _, name := range names {
		p := "/" + name
		if !slices.Contains(paths, p) {
			t.Errorf("Paths() = %q, missing %s", paths, p)
		}
		want, ok := wantTypes[path.Ext(name)]
		if !ok {
			t.Errorf("%s: no expected Content-Type for %q in this test; add one", name, path.Ext(name))
			continue
		}
		body, err := fs.ReadFile(Files(), name)
		if err != nil {
			t.Fatal(err)
		}
		rec := get(site, http.MethodGet, p, nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != want || rec.Body.String() != string(body) {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %q (%d bytes)", p, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), want, len(body))
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options = %q, want nosniff", p, got)
		}
	}
	if len(paths) != len(names)+1 { // the files and "/"
		t.Errorf("Paths() = %q, want the %d files and /", paths, len(names))
	}
	for _, p := range paths {
		if strings.HasSuffix(p, ".go") {
			t.Errorf("Paths() serves Go source %s", p)
		}
	}
}

func TestSiteRequests(t *testing.T) {
	site := newSite(t)
	first := get(site, http.MethodGet, "/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /app.js ETag = %q, Cache-Control = %q; want an ETag and no-cache", etag, first.Header().Get("Cache-Control"))
	}
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		wantCode int
		wantBody bool
	}{
		{"revalidate", http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag}, http.StatusNotModified, false},
		{"changed", http.MethodGet, "/app.js", map[string]string{"If-None-Match": `"other"`}, http.StatusOK, true},
		{"head", http.MethodHead, "/switchboard.js", nil, http.StatusOK, false},
		{"directory", http.MethodGet, "/ui", nil, http.StatusNotFound, false},
		{"directory slash", http.MethodGet, "/ui/", nil, http.StatusNotFound, false},
		{"missing", http.MethodGet, "/nope.js", nil, http.StatusNotFound, false},
		{"go source", http.MethodGet, "/web.go", nil, http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(site, tt.method, tt.path, tt.header)
			if rec.Code != tt.wantCode {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.wantCode)
			}
			if tt.wantBody && rec.Body.Len() == 0 {
				t.Errorf("%s %s: empty body", tt.method, tt.path)
			}
			if tt.method == http.MethodHead && rec.Body.Len() != 0 {
				t.Errorf("HEAD %s: body of %d bytes", tt.path, rec.Body.Len())
			}
		})
	}
}

func TestContentType(t *testing.T) {
	site, err := NewSite(fstest.MapFS{
		"index.html":  {Data: []byte("<!doctype html>")},
		"a/b/c.mjs":   {Data: []byte("export {}")},
		"logo.svg":    {Data: []byte("<svg></svg>")},
		"data.json":   {Data: []byte("{}")},
		"README":      {Data: []byte("hello")},
		"empty/.keep": {Data: nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"/", "text/html; charset=utf-8"},
		{"/a/b/c.mjs", "text/javascript; charset=utf-8"},
		{"/logo.svg", "image/svg+xml"},
		{"/data.json", "application/json"},
		{"/README", "text/plain; charset=utf-8"}, // sniffed
	}
	for _, tt := range tests {
		rec := get(site, http.MethodGet, tt.path, nil)
		if got := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || got != tt.want {
			t.Errorf("GET %s = %d %q, want 200 %q", tt.path, rec.Code, got, tt.want)
		}
	}
}

// TestModuleImports checks that every relative import of every module
// names an embedded file: there is no build step to catch a typo.
func TestModuleImports(t *testing.T) {
	importRE := regexp.MustCompile(`(?m)^\s*(?:import\s+(?:[^'";]*?\bfrom\s+)?|export\s+[^'";=]*?\bfrom\s+)['"]([^'"]+)['"]`)
	files := map[string]bool{}
	for _, name := range pageFiles(t) {
		files[name] = true
	}
	n := 0
	for name := range files {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range importRE.FindAllStringSubmatch(readFile(t, name), -1) {
			spec := m[1]
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: only relative imports of the page's own files", name, spec)
				continue
			}
			target := path.Join(path.Dir(name), spec)
			if !files[target] {
				t.Errorf("%s imports %q: %s is not embedded", name, spec, target)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("found no imports at all; is the pattern right?")
	}
	if page := readFile(t, "index.html"); !strings.Contains(page, `<script type="module" src="app.js"></script>`) {
		t.Error(`index.html does not load app.js as a module`)
	}
}

// TestPageIDs guards the ids that the browser tests select.
func TestPageIDs(t *testing.T) {
	page := readFile(t, "index.html")
	ids := []string{
		"register-form", "login-form", "username", "password", "email", "show-register", "show-login",
		"chat", "group-name", "me", "logout", "logout-all", "online", "messages", "message-input", "conn-status",
		"close-reason", "status-panel", "status-key", "status-value", "status-version", "status-changed",
	}
	for _, id := range ids {
		if n := strings.Count(page, `id="`+id+`"`); n != 1 {
			t.Errorf("index.html has id %q %d times, want 1", id, n)
		}
	}
}

// TestSafeRendering keeps user text out of HTML parsing and the page free of
// external downloads, in every file of the page.
func TestSafeRendering(t *testing.T) {
	forbidden := map[string][]string{
		".js":   {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"},
		".html": {"http://", "https://", `src="//`, `href="//`, "<script>", "style="},
		".css":  {"http://", "https://", "@import", "url("},
	}
	for _, name := range pageFiles(t) {
		body := readFile(t, name)
		for _, s := range forbidden[path.Ext(name)] {
			if strings.Contains(body, s) {
				t.Errorf("%s contains %q", name, s)
			}
		}
	}
}

// TestClientModuleIsStandalone keeps switchboard.js reusable by any front
// end: no DOM, no page globals, no storage, no imports.
func TestClientModuleIsStandalone(t *testing.T) {
	body := readFile(t, "switchboard.js")
	code := regexp.MustCompile(`(?m)//.*$`).ReplaceAllString(body, "") // comments may mention anything
	for _, s := range []string{"document", "window", "localStorage", "sessionStorage", "getElementById", "querySelector", "import "} {
		if strings.Contains(code, s) {
			t.Errorf("switchboard.js contains %q outside comments", s)
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

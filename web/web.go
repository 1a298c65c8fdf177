// Package web holds the chat page that the server serves at "/".
//
// The page is plain HTML, CSS and JavaScript modules with no build step and
// no external downloads; it talks to the server only through the public API
// (/api/..., /api-token-auth/, /api-token-refresh/, /ws/chat/, /ws/status/).
// switchboard.js is the reusable client module; app.js and ui/*.js are the
// page.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"time"
)

// files is the page, embedded into the binary: every page file of this
// folder and of its subfolders. A new file type at the top level needs its
// pattern here; anything under ui/ is included as it is.
//
//go:embed *.html *.js *.css ui
var files embed.FS

// Files returns the page's files (index.html, app.js, switchboard.js,
// style.css, ui/...) at the root of a read-only file system, for NewSite.
func Files() fs.FS {
	return files
}

// contentTypes are the types the page's files are served with. They are
// fixed here rather than taken from the system's mime.types, because module
// scripts must come with a JavaScript type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

// ContentType returns the Content-Type the page's file name is served with,
// or "" to let the content decide.
func ContentType(name string) string {
	ext := path.Ext(name)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}

// Site serves the files of a file system at their own paths ("/app.js",
// "/ui/chat.js") and index.html also at "/". It reads every file once, in
// NewSite, and serves them from memory with a strong ETag, so a browser
// revalidates instead of downloading the page again. Directories are not
// served.
type Site struct {
	files map[string]siteFile // by URL path
	paths []string            // sorted
}

type siteFile struct {
	body        []byte
	contentType string
	etag        string
}

// NewSite reads every file of fsys.
func NewSite(fsys fs.FS) (*Site, error) {
	s := &Site{files: map[string]siteFile{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := siteFile{
			body:        body,
			contentType: ContentType(name),
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
		}
		s.files["/"+name] = f
		if name == "index.html" {
			s.files["/"] = f
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the page: %w", err)
	}
	for p := range s.files {
		s.paths = append(s.paths, p)
	}
	sort.Strings(s.paths)
	return s, nil
}

// Paths returns the URL path of every file served, "/" included, sorted.
func (s *Site) Paths() []string {
	return append([]string(nil), s.paths...)
}

// ServeHTTP serves the file at r.URL.Path, answering GET and HEAD.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	if f.contentType != "" {
		h.Set("Content-Type", f.contentType)
	}
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: the page changes with the binary
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

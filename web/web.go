// Package web holds the chat page that the server serves at "/".
//
// The page is plain HTML, CSS and JavaScript with no build step and no
// external downloads; it talks to the server only through the public API
// (/api/..., /api-token-auth/, /api-token-refresh/, /ws/chat/, /ws/status/).
package web

import (
	"embed"
	"io/fs"
)

// files is the page, embedded into the binary.
//
//go:embed index.html app.js style.css
var files embed.FS

// Files returns the page's files (index.html, app.js, style.css) at the root
// of a read-only file system, ready for http.FileServer(http.FS(web.Files())),
// which serves index.html for "/" and sets Content-Type from the extension.
func Files() fs.FS {
	return files
}

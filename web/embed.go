// Package web is the meshtalk web UI: its sources (src/), the bundle built
// from them (dist/, committed, so that running a node needs no Node.js)
// and that bundle embedded for the local API to serve.
//
// Rebuild with `go generate ./web` (npm ci, then esbuild through
// build.mjs); the build is reproducible byte for byte, and CI fails when
// the committed bundle is not what the sources build.
package web

import (
	"embed"
	"io/fs"
)

//go:generate npm ci --no-audit --no-fund
//go:generate npm run build

//go:embed dist
var dist embed.FS

// Files answers the bundle: index.html and the files it loads.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is embedded above
	}
	return sub
}

package web_test

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/meshtalk/meshtalk/web"
)

// TestBudget: the UI's JavaScript and CSS stay under 150 KiB gzipped.
func TestBudget(t *testing.T) {
	total := 0
	err := fs.WalkDir(web.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".css")) {
			return err
		}
		b, err := fs.ReadFile(web.Files(), path)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(b)
		w.Close()
		t.Logf("%s: %d bytes, %d gzipped", path, len(b), z.Len())
		total += z.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || total > 150<<10 {
		t.Fatalf("JS+CSS is %d bytes gzipped; the budget is 150 KiB (and there must be some)", total)
	}
}

// TestNoNetwork: the bundle loads nothing from outside the node.
func TestNoNetwork(t *testing.T) {
	external := regexp.MustCompile(`(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(["']?https?:|fonts\.googleapis|cdn\.`)
	fs.WalkDir(web.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := fs.ReadFile(web.Files(), path)
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads from outside: %q", path, m)
		}
		return nil
	})
}

package nodetest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// SameFolder fails t unless folder got holds what folder want does: the
// same paths, each folder a folder (empty ones too) and each file with
// the same bytes.
func SameFolder(t testing.TB, want, got string) {
	t.Helper()
	w, g := folderTree(t, want), folderTree(t, got)
	if len(w) != len(g) {
		t.Fatalf("%s holds %d entries, %s %d", got, len(g), want, len(w))
	}
	for p, v := range w {
		if gv, ok := g[p]; !ok || gv != v {
			t.Fatalf("%s: %s differs or is missing (%d bytes, want %d)", got, p, len(gv), len(v))
		}
	}
}

// folderTree is what a folder holds: each file's bytes and each folder
// ("/" after its name), by slash-separated path inside it.
func folderTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

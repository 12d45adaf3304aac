// Package layout holds the test that keeps the import rules of DESIGN.md
// (docs/architecture.md has them): imports point one way, cmd → api →
// node → protocol packages; chat and group never import each other;
// history, transfer and discovery import no other protocol package; and
// the relay never sees chat or group.
package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/meshtalk/meshtalk"

// forbidden maps a package to the packages it must not import, directly
// or through others.
var forbidden = map[string][]string{
	"discovery": {"node", "api", "cmd/meshtalk", "chat", "group", "history", "transfer", "relay", "call"},
	"chat":      {"node", "api", "cmd/meshtalk", "discovery", "relay", "call", "group"},
	"group":     {"node", "api", "cmd/meshtalk", "discovery", "relay", "call", "chat", "chat/pb"},
	"history":   {"node", "api", "cmd/meshtalk", "discovery", "relay", "call", "chat", "chat/pb", "group", "group/pb", "transfer"},
	"transfer":  {"node", "api", "cmd/meshtalk", "chat", "group", "history", "relay", "discovery", "call"},
	"relay":     {"node", "api", "cmd/meshtalk", "chat", "group", "history", "call"},
	"call":      {"node", "api", "cmd/meshtalk", "chat", "group", "history", "relay"},
	"node":      {"api", "cmd/meshtalk"},
	"api":       {"cmd/meshtalk"},
	"web":       {"node", "api", "chat", "group", "history", "discovery", "transfer", "relay", "call", "cmd/meshtalk"},
}

func TestImportBoundaries(t *testing.T) {
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", module+"/"+pkg).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "no required module provides package") ||
				strings.Contains(string(out), "cannot find package") || strings.Contains(string(out), "no Go files") {
				continue // a package the rules name that this module does not have: nothing imports it
			}
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, b := range bad {
			if deps[module+"/"+b] {
				t.Errorf("%s imports %s (directly or not); DESIGN.md forbids it", pkg, b)
			}
		}
	}
}

// allowedDirect maps a package to the packages of this module it may
// import directly, its tests included ("internal/" allows every internal
// helper). Everything else of the module goes through them: the API
// through node's use-case methods, the CLI through the API's client.
var allowedDirect = map[string][]string{
	"api":          {"node", "web", "internal/"}, // web: the UI's embedded bundle, which imports nothing
	"cmd/meshtalk": {"api", "node", "internal/"},
}

func TestDirectImports(t *testing.T) {
	for pkg, allowed := range allowedDirect {
		out, err := exec.Command("go", "list", "-f",
			`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
			module+"/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		fields := strings.Fields(string(out))
		for _, imp := range fields[1:] {
			rel, ours := strings.CutPrefix(imp, module+"/")
			if !ours || rel == pkg || directOK(rel, allowed) {
				continue
			}
			t.Errorf("%s (or its tests) imports %s directly; it may import, of this module, only %v", pkg, rel, allowed)
		}
	}
}

func directOK(rel string, allowed []string) bool {
	for _, a := range allowed {
		if rel == a || strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a) {
			return true
		}
	}
	return false
}

// TestTestImports holds every package's tests to its rules too: a test
// may reach node (through the shared helper, internal/nodetest, or for its
// events), but not the packages its own code may not import.
func TestTestImports(t *testing.T) {
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-e", "-f",
			`{{join .TestImports " "}} {{join .XTestImports " "}}`, module+"/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		imports := map[string]bool{}
		for _, imp := range strings.Fields(string(out)) {
			imports[imp] = true
		}
		for _, b := range bad {
			if b != "node" && imports[module+"/"+b] {
				t.Errorf("the tests of %s import %s; DESIGN.md forbids %s to import it", pkg, b, pkg)
			}
		}
	}
}

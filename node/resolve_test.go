package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestResolve: every kind of reference, through the use cases that take
// them: peers by nickname, ID prefix, short ID and friend code; groups by
// name and prefix; messages and files by prefix; and each ambiguity as an
// AmbiguousError that lists the candidates.
func TestResolve(t *testing.T) {
	ctx := context.Background()
	a := nodetest.Start(t, nodetest.Options{})
	b := nodetest.Start(t, nodetest.Options{})
	c := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	nodetest.Befriend(t, a, c)
	for n, name := range map[*node.Node]string{b: "Bob", c: "bob"} {
		if _, err := n.SetProfile(ctx, node.ProfileUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, 10*time.Second, "profiles", func() bool {
		return a.NameOf(ctx, b.ID()) == "Bob" && a.NameOf(ctx, c.ID()) == "bob"
	})

	// Two friends called bob: an error that names both.
	_, err := a.ResolvePeer(ctx, "BOB")
	var amb *node.AmbiguousError
	if !errors.As(err, &amb) || len(amb.Candidates) != 2 || !strings.Contains(err.Error(), b.ID().String()) {
		t.Fatalf("BOB: %v, want an AmbiguousError naming both", err)
	}
	if _, err := a.History(ctx, "bob", "", 0); !errors.Is(err, node.ErrAmbiguous) {
		t.Errorf("history bob: %v, want ErrAmbiguous", err)
	}
	id, err := a.Identity()
	if err != nil {
		t.Fatal(err)
	}
	bID := b.ID().String()
	for ref, want := range map[string]peer.ID{
		bID[:14]:                  b.ID(),
		node.ShortID(c.ID()):      c.ID(),
		bID:                       b.ID(),
		id.FriendCode:             a.ID(),
		"/p2p/" + c.ID().String(): c.ID(),
	} {
		if got, err := a.ResolvePeer(ctx, ref); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", ref, got, err, want)
		}
	}
	// What names no one says why: with no relay to ask, a username
	// cannot be looked up; a reserved name is no username at all.
	if _, err := a.ResolvePeer(ctx, "zelda"); !errors.Is(err, node.ErrNotContact) || !strings.Contains(err.Error(), "(to find people by username, add a relay)") {
		t.Errorf("zelda: %v, want ErrNotContact that asks for a relay", err)
	}
	if _, err := a.ResolvePeer(ctx, "nobody"); !errors.Is(err, node.ErrNotContact) || !strings.Contains(err.Error(), "nor a peer ID, friend code or username") {
		t.Errorf("nobody: %v, want ErrNotContact", err)
	}

	// Groups: by name (any case) and by prefix; two of one name are
	// ambiguous.
	g1, err := a.CreateGroup(ctx, "Book club", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"book CLUB", g1.ID[:8], g1.ID} {
		if got, err := a.ResolveGroup(ctx, ref); err != nil || got != g1.ID {
			t.Errorf("group %q: %v %v", ref, got, err)
		}
	}
	if _, err := a.CreateGroup(ctx, "book club", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupMembers(ctx, "Book club"); !errors.As(err, &amb) || len(amb.Candidates) != 2 {
		t.Errorf("two book clubs: %v, want an AmbiguousError", err)
	}

	// Messages: a unique prefix, any case; a reply quotes what it answers.
	m, err := a.SendMessage(ctx, bID[:14], node.Draft{Text: "hello Bob"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name == "" {
		t.Errorf("a sent message has no author's name")
	}
	if got, err := a.ResolveMessage(ctx, strings.ToLower(m.ID[:20])); err != nil || got != m.ID {
		t.Errorf("message prefix: %v %v, want %s", got, err, m.ID)
	}
	if _, err := a.ResolveMessage(ctx, "ZZZZZZZZZZ"); !errors.Is(err, node.ErrNoMessage) {
		t.Errorf("no such message: %v", err)
	}
	reply, err := a.SendMessage(ctx, b.ID().String(), node.Draft{Text: "again", ReplyTo: m.ID[:20]})
	if err != nil {
		t.Fatal(err)
	}
	if reply.ReplyTo != m.ID || reply.Quote != "hello Bob" {
		t.Errorf("reply: to %q quoting %q, want %s quoting %q", reply.ReplyTo, reply.Quote, m.ID, "hello Bob")
	}

	// Files: b gets an offer from a and names it by a prefix or its name.
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("some notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := a.SendFile(ctx, node.FileSend{To: bID, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if sent.ToName != "Bob" {
		t.Errorf("file sent to %q, want Bob", sent.ToName)
	}
	nodetest.Eventually(t, 10*time.Second, "the offer at b", func() bool {
		_, err := b.ResolveFile(ctx, "notes.txt")
		return err == nil
	})
	fid, err := b.ResolveFile(ctx, "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.ResolveFile(ctx, strings.ToUpper(fid[:10])); err != nil || got != fid {
		t.Errorf("file prefix: %v %v, want %s", got, err, fid)
	}
	files, err := b.Files(ctx)
	if err != nil || len(files) != 1 || files[0].FromName != node.ShortID(a.ID()) {
		t.Errorf("files at b: %+v %v", files, err)
	}
}

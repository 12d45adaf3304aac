package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshtalk/meshtalk/api"
)

// TestErrorStatus: the node's errors reach clients with their status and
// code, through the typed client.
func TestErrorStatus(t *testing.T) {
	_, srv := startAPI(t)
	ctx := context.Background()
	c := api.NewClient(srv.Addr(), srv.Token())
	g, err := c.CreateGroup(ctx, api.CreateGroupRequest{Name: "crew"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"no such group", func() error { _, err := c.Group(ctx, "nope-nope"); return err }, 404, api.CodeNotFound},
		{"negative invite", func() error {
			_, err := c.InviteToGroup(ctx, g.ID, api.InviteRequest{ExpiresSeconds: -1})
			return err
		}, 400, api.CodeBadRequest},
		{"file never offered", func() error { _, err := c.GetFile(ctx, "abcd", t.TempDir()); return err }, 404, api.CodeNotFound},
		// No dir is the downloads folder; a relative one is no place.
		{"file with a relative dir", func() error { _, err := c.GetFile(ctx, "abcd", "down/here"); return err }, 400, api.CodeBadRequest},
		{"no such download", func() error { return c.CancelFile(ctx, "abcd") }, 404, api.CodeNotFound},
		{"operator on a personal node", func() error { _, err := c.RelayStats(ctx); return err }, 404, api.CodeNotFound},
		{"bad relay address", func() error {
			_, err := c.Register(ctx, api.RegisterRequest{Relay: "nowhere", Name: "alice"})
			return err
		}, 400, api.CodeBadRequest},
		{"ping nobody", func() error {
			return c.Ping(ctx, api.PingRequest{Peer: "nobody"}, func(api.PingResult) error { return nil })
		}, 404, api.CodeNotFound},
		{"ping a bad address", func() error {
			return c.Ping(ctx, api.PingRequest{Peer: "/ip4/127.0.0.1"}, func(api.PingResult) error { return nil })
		}, 400, api.CodeBadRequest},
	} {
		var aerr *api.Error
		if err := tc.call(); !errors.As(err, &aerr) || aerr.Status != tc.status || aerr.Code != tc.code {
			t.Errorf("%s: got %v, want %d %s", tc.name, err, tc.status, tc.code)
		}
	}
}

// TestErrorMessageForUser: a refused request's message does not carry the
// names of the packages it passed through ("chat: avatar: history: ...").
func TestErrorMessageForUser(t *testing.T) {
	_, srv := startAPI(t)
	c := api.NewClient(srv.Addr(), srv.Token())
	_, err := c.SetProfile(context.Background(), api.ProfileRequest{Avatar: []byte("not a picture")})
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.Status != 400 {
		t.Fatalf("a bad avatar: %v", err)
	}
	if !strings.HasPrefix(aerr.Message, "avatar: ") || strings.Contains(aerr.Message, "chat: ") || strings.Contains(aerr.Message, "history: ") {
		t.Fatalf("a bad avatar's message: %q", aerr.Message)
	}
	_, err = c.JoinGroup(context.Background(), "mtg1-no-such-invite")
	if !errors.As(err, &aerr) || aerr.Status >= 500 || strings.Contains(aerr.Message, "group: ") || !strings.Contains(aerr.Message, "invite") {
		t.Fatalf("a bad invite code: %v", err)
	}
}

package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/chat"
)

func newFriendCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "friend", Short: "Friend requests and the friend list"}
	var message string
	add := &cobra.Command{
		Use:   "add CODE|PEER_ID",
		Short: "Send a friend request (a friend code from `meshtalk id` carries the addresses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f api.Friend
			if err := g.call(cmd, "POST", "/api/v1/friends", api.AddFriendRequest{Peer: args[0], Message: message}, &f); err != nil {
				return err
			}
			if f.State == chat.StateFriend {
				fmt.Fprintf(g.stdout, "%s asked you first: you are friends now\n", f.PeerID)
			} else {
				fmt.Fprintf(g.stdout, "friend request to %s stored; it is delivered when they are reachable\n", f.PeerID)
			}
			return nil
		},
	}
	add.Flags().StringVar(&message, "message", "", "a message with the request")
	cmd.AddCommand(add)
	for _, action := range []struct{ name, short, done string }{
		{"accept", "Accept a friend request", "you and %s are friends"},
		{"decline", "Decline a friend request", "declined %s"},
		{"remove", "Remove a friend (on both sides)", "removed %s"},
		{"block", "Block a peer: remove on both sides and refuse everything it sends", "blocked %s"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   action.name + " FRIEND",
			Short: action.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var f api.Friend
				if err := g.call(cmd, "POST", "/api/v1/friends/"+url.PathEscape(args[0])+"/"+action.name, nil, &f); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, action.done+"\n", f.PeerID)
				return nil
			},
		})
	}
	var pending, asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List friends and requests, with presence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var friends []api.Friend
			path := "/api/v1/friends"
			if pending {
				path += "?pending=true"
			}
			if err := g.call(cmd, "GET", path, nil, &friends); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(friends)
			}
			if len(friends) == 0 {
				fmt.Fprintln(g.stdout, "no friends yet: share `meshtalk id`'s friend code, or `meshtalk friend add CODE`")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPEER\tSTATE\tPRESENCE\tSTATUS")
			for _, f := range friends {
				name, status := "-", ""
				if f.Profile != nil {
					name, status = f.Profile.Name, f.Profile.Status
					if f.Profile.AvatarID != "" {
						name += " 🖼"
					}
				}
				presence := "offline"
				switch {
				case f.Online:
					presence = "online"
				case !f.LastSeen.IsZero():
					presence = "last seen " + f.LastSeen.Local().Format("2006-01-02 15:04")
				}
				if f.State == chat.StatePendingIn && f.Message != "" {
					status = "asks: " + f.Message
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, f.PeerID, f.State, presence, status)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&pending, "pending", false, "only requests waiting for your answer")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

// messageFlags are what `send` and `group send` take: what a message
// carries besides its text.
type messageFlags struct {
	face, picture, reply, react, file string
	asJSON                            bool
}

func (f *messageFlags) register(cmd *cobra.Command, fileHelp string) {
	cmd.Flags().StringVar(&f.face, "face", "", "send a face by name (see GET /api/v1/faces): smile, laugh, heart, party, ...")
	cmd.Flags().StringVar(&f.picture, "picture", "", "send a picture (PNG, JPEG or GIF up to 5 MiB); a thumbnail travels inline")
	cmd.Flags().StringVar(&f.file, "file", "", fileHelp)
	cmd.Flags().StringVar(&f.reply, "reply", "", "reply to the message with this ID")
	cmd.Flags().StringVar(&f.react, "react", "", "react to the message with this ID (TEXT is the emoji)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
}

// content is the message's text (args[1]) and picture; a message with
// nothing in it is an error.
func (f *messageFlags) content(args []string) (text string, picture []byte, err error) {
	if len(args) == 2 {
		text = args[1]
	}
	if f.picture != "" {
		if picture, err = readLimited(f.picture, chat.MaxImageInput); err != nil {
			return "", nil, err
		}
	}
	if text == "" && f.face == "" && picture == nil && f.file == "" {
		return "", nil, fmt.Errorf("nothing to send: give TEXT, --face NAME, --picture PATH or --file PATH")
	}
	return text, picture, nil
}

// print shows a sent message.
func (f *messageFlags) print(g *globals, m chat.Message) error {
	if f.asJSON {
		return g.printJSON(m)
	}
	fmt.Fprintf(g.stdout, "%s %s\n", m.ID, m.State)
	return nil
}

func newSendCmd(g *globals) *cobra.Command {
	var f messageFlags
	cmd := &cobra.Command{
		Use:   "send FRIEND [TEXT]",
		Short: "Send a message; it is stored at once and delivered when the friend is reachable",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, picture, err := f.content(args)
			if err != nil {
				return err
			}
			if f.file != "" {
				return sendFile(cmd, g, args[0], f.file, text, false)
			}
			req := api.SendRequest{To: args[0], Text: text, Face: f.face, Picture: picture, ReplyTo: f.reply, ReactTo: f.react}
			var m chat.Message
			if err := g.call(cmd, "POST", "/api/v1/messages", req, &m); err != nil {
				return err
			}
			return f.print(g, m)
		},
	}
	f.register(cmd, "offer a file (the friend fetches it with `meshtalk file get`)")
	return cmd
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over the %d MiB limit", path, max>>20)
	}
	return b, nil
}

func newHistoryCmd(g *globals) *cobra.Command {
	var before string
	var limit int
	var asJSON, keepUnread bool
	cmd := &cobra.Command{
		Use:   "history FRIEND|GROUP",
		Short: "Show a conversation, a page at a time (marks it read)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"with": {args[0]}, "limit": {strconv.Itoa(limit)}}
			if before != "" {
				q.Set("before", before)
			}
			var page chat.HistoryPage
			if err := g.call(cmd, "GET", "/api/v1/history?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if !keepUnread {
				if err := g.call(cmd, "POST", "/api/v1/read", api.ReadRequest{With: args[0]}, nil); err != nil {
					return err
				}
			}
			if asJSON {
				return g.printJSON(page.Messages)
			}
			printMessages(g, page.Messages)
			if page.More && len(page.Messages) > 0 {
				fmt.Fprintf(g.stdout, "(older: --before %s)\n", page.Messages[0].ID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "show messages older than this message ID")
	cmd.Flags().IntVar(&limit, "limit", 50, "messages per page (at most 1000)")
	cmd.Flags().BoolVar(&keepUnread, "keep-unread", false, "do not mark the conversation read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (a list of messages)")
	return cmd
}

func printMessages(g *globals, msgs []*chat.Message) {
	faces := chat.FaceTable()
	for _, m := range msgs {
		body := m.Text
		switch m.Kind {
		case chat.KindFace:
			body = faces[m.Face] + " (" + m.Face + ")"
		case chat.KindPicture:
			body = fmt.Sprintf("[picture, %d-byte thumbnail]", len(m.Thumbnail))
		case chat.KindReply:
			body = "↪ " + m.ReplyTo + ": " + m.Text
		case chat.KindReaction:
			body = m.Text + " to " + m.ReactTo
		case chat.KindFile:
			if m.File != nil {
				body = fmt.Sprintf("[file %s, %s, id %s] %s", m.File.Name, humanBytes(m.File.Size), m.File.ID[:16], m.Text)
			}
		}
		who := "<" + shortPeer(m.From.String()) + ">"
		if m.Outgoing {
			who = "<me>"
		}
		fmt.Fprintf(g.stdout, "%s  %s %s  [%s %s]\n", m.Time.Local().Format("2006-01-02 15:04:05"), who, body, m.State, m.ID)
	}
}

func shortPeer(p string) string {
	if len(p) > 12 {
		return "…" + p[len(p)-8:]
	}
	return p
}

func newSearchCmd(g *globals) *cobra.Command {
	var with string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "search TEXT",
		Short: "Search the history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"q": {args[0]}}
			if with != "" {
				q.Set("with", with)
			}
			var msgs []*chat.Message
			if err := g.call(cmd, "GET", "/api/v1/search?"+q.Encode(), nil, &msgs); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(msgs)
			}
			if len(msgs) == 0 {
				fmt.Fprintln(g.stdout, "no messages found")
			}
			printMessages(g, msgs)
			return nil
		},
	}
	cmd.Flags().StringVar(&with, "with", "", "only the conversation with this friend, or this group")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newReadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "read FRIEND|GROUP",
		Short: "Mark a conversation read (and tell the friend, unless read receipts are off)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.ReadResult
			if err := g.call(cmd, "POST", "/api/v1/read", api.ReadRequest{With: args[0]}, &res); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "marked %d messages read\n", res.Marked)
			return nil
		},
	}
}

func newProfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Your profile: name, avatar, status"}
	var name, avatar, status string
	var asJSON bool
	set := &cobra.Command{
		Use:   "set",
		Short: "Change your profile; friends get it now or when they reconnect",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req api.ProfileRequest
			if cmd.Flags().Changed("name") {
				req.Name = &name
			}
			if cmd.Flags().Changed("status") {
				req.Status = &status
			}
			if avatar != "" {
				b, err := readLimited(avatar, chat.MaxImageInput)
				if err != nil {
					return err
				}
				req.Avatar = b
			}
			var p chat.Profile
			if err := g.call(cmd, "PUT", "/api/v1/profile", req, &p); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(p)
			}
			avatar := "none"
			if p.AvatarID != "" {
				avatar = p.AvatarID[:16]
			}
			fmt.Fprintf(g.stdout, "profile version %d: name %q, status %q, avatar %s\n", p.Version, p.Name, p.Status, avatar)
			return nil
		},
	}
	set.Flags().StringVar(&name, "name", "", "your nickname")
	set.Flags().StringVar(&status, "status", "", "your status text")
	set.Flags().StringVar(&avatar, "avatar", "", "an image (PNG, JPEG or GIF up to 5 MiB), cropped square and scaled to 256 px")
	set.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(set)
	return cmd
}

func newWatchCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print events as they happen: messages, receipts, presence, friend requests, profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.Events(cmd.Context())
			if err != nil {
				return err
			}
			defer stream.Close()
			for {
				ev, err := stream.Next()
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return fmt.Errorf("event stream ended: %w", err)
				}
				if asJSON {
					if err := g.printJSONLine(ev); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(g.stdout, "%s %-18s %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Type, summarize(ev.Data))
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as a JSON line")
	return cmd
}

// summarize prints an event's data compactly: its fields as key=value,
// thumbnails and avatars left out.
func summarize(data any) string {
	m, ok := data.(map[string]any)
	if !ok {
		return fmt.Sprint(data)
	}
	var parts []string
	for _, k := range []string{"peer_id", "from", "id", "kind", "text", "face", "state", "online", "name", "message", "path", "reachability", "version"} {
		if v, ok := m[k]; ok && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}

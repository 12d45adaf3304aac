package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

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
	cmd.Flags().StringVar(&f.reply, "reply", "", "reply to the message with this ID (or a unique prefix of it)")
	cmd.Flags().StringVar(&f.react, "react", "", "react to the message with this ID or prefix (TEXT is the emoji)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
}

// content is the message's text (args[1]) and picture; a message with
// nothing in it is an error.
func (f *messageFlags) content(args []string) (text string, picture []byte, err error) {
	if len(args) == 2 {
		text = args[1]
	}
	if f.picture != "" {
		if picture, err = readLimited(f.picture, api.MaxImageInput); err != nil {
			return "", nil, err
		}
	}
	if text == "" && f.face == "" && picture == nil && f.file == "" {
		return "", nil, fmt.Errorf("nothing to send: give TEXT, --face NAME, --picture PATH or --file PATH")
	}
	return text, picture, nil
}

// pictureName is the picture's file name, which its original keeps.
func (f *messageFlags) pictureName() string {
	if f.picture == "" {
		return ""
	}
	return filepath.Base(f.picture)
}

// print shows a sent message.
func (f *messageFlags) print(g *globals, m *api.Message) error {
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
				return sendFile(cmd, g, api.SendFileRequest{To: args[0], Path: f.file, Message: text}, f.asJSON)
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			m, err := c.Send(cmd.Context(), api.SendRequest{To: args[0], Text: text, Face: f.face, Picture: picture, PictureName: f.pictureName(), ReplyTo: f.reply, ReactTo: f.react})
			if err != nil {
				return err
			}
			return f.print(g, m)
		},
	}
	f.register(cmd, "offer the file or folder at `PATH` (the friend fetches it with 'meshtalk file get')")
	return cmd
}

// readAvatar reads the picture file an --avatar flag names; nil when it
// names none.
func readAvatar(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return readLimited(path, api.MaxImageInput)
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
			if limit < 1 || limit > api.MaxLimit {
				return fmt.Errorf("--limit %d is out of range: give 1 to %d", limit, api.MaxLimit)
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			page, err := c.History(cmd.Context(), args[0], before, limit)
			if err != nil {
				return err
			}
			if !keepUnread {
				if _, err := c.MarkRead(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			if asJSON {
				return g.printJSON(page.Messages)
			}
			printMessages(g, page.Messages, nil)
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

// printMessages prints messages a line each; where, when not nil, names
// each one's conversation at the start of its line.
func printMessages(g *globals, msgs []*api.Message, where func(*api.Message) string) {
	faces := api.FaceTable()
	for _, m := range msgs {
		body := m.Text
		switch m.Kind {
		case api.KindFace:
			body = strings.TrimSpace(faces[m.Face] + " (" + m.Face + ") " + m.Text)
		case api.KindPicture:
			body = strings.TrimSpace(fmt.Sprintf("[picture, %d-byte thumbnail%s] %s", len(m.Thumbnail), originalState(m), m.Text))
		case api.KindReply:
			body = "↪ " + quote(m.Quote, m.ReplyTo) + " " + m.Text
		case api.KindReaction:
			body = m.Text + " to " + quote(m.Quote, m.ReactTo)
		case api.KindFile:
			if m.File != nil {
				body = fmt.Sprintf("[file %s, %s, id %s] %s", m.File.Name, humanBytes(m.File.Size), m.File.ID[:16], m.Text)
			}
		}
		switch {
		case m.Deleted:
			body = "message deleted"
		case !m.EditedAt.IsZero():
			body += " (edited)"
		}
		who := "<" + orShort(m.Name, m.From.String()) + ">"
		if m.Outgoing {
			who = "<me>"
		}
		state := stateOf(m)
		if m.Error != "" {
			state += ": " + m.Error
		}
		if where != nil {
			who = where(m) + "  " + who
		}
		fmt.Fprintf(g.stdout, "%s  %s %s  [%s %s]\n", m.Time.Local().Format("2006-01-02 15:04:05"), who, body, state, m.ID)
	}
}

// conversationNames names a message's conversation as search shows it:
// "in GROUP" or "with FRIEND", by the names the node has now.
func conversationNames(cmd *cobra.Command, c *api.Client) (func(*api.Message) string, error) {
	friends, err := c.Friends(cmd.Context(), false)
	if err != nil {
		return nil, err
	}
	groups, err := c.Groups(cmd.Context())
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, f := range friends {
		names[f.PeerID.String()] = "with " + f.Name
	}
	for _, gi := range groups {
		names[gi.ID] = "in " + gi.Name
	}
	return func(m *api.Message) string {
		key := m.From.String()
		switch {
		case m.Group != "":
			key = m.Group
		case m.Outgoing:
			key = m.To.String()
		}
		if name, ok := names[key]; ok {
			return name
		}
		if m.Group != "" {
			return "in " + shortPeer(key)
		}
		return "with " + shortPeer(key)
	}, nil
}

// originalState is what history says of a received picture's original
// that is not here: the tap to download it.
func originalState(m *api.Message) string {
	if m.File == nil || len(m.File.ID) < 16 {
		return ""
	}
	switch m.FileState {
	case "available":
		return ", original not fetched: meshtalk file get " + m.File.ID[:16]
	case "failed":
		return ", original failed: meshtalk file get " + m.File.ID[:16]
	}
	return ""
}

// stateOf is a message's state as history shows it: for this node's own
// group message, how many of its recipients stored and read it.
func stateOf(m *api.Message) string {
	if m.State == "queued" && m.ParkedOn != "" {
		return "parked on relay " + shortPeer(m.ParkedOn.String())
	}
	if !m.Outgoing || m.Group == "" || m.Recipients == 0 || m.Deleted {
		return m.State
	}
	if len(m.ReadBy) > 0 {
		return fmt.Sprintf("read by %d of %d", len(m.ReadBy), m.Recipients)
	}
	return fmt.Sprintf("delivered to %d of %d", len(m.DeliveredBy), m.Recipients)
}

func newEditCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "edit MSG TEXT",
		Short: "Change the text of a message you sent (to a friend or a group); they see it \"(edited)\"",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			m, err := c.EditMessage(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(m)
			}
			fmt.Fprintf(g.stdout, "%s edited\n", m.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the message as edited)")
	return cmd
}

func newDeleteCmd(g *globals) *cobra.Command {
	var asJSON, forEveryone bool
	cmd := &cobra.Command{
		Use:   "delete MSG",
		Short: "Delete a message here, or with --for-everyone (your own messages) on every side",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			m, err := c.DeleteMessage(cmd.Context(), args[0], forEveryone)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(m)
			}
			where := "here"
			if forEveryone {
				where = "for everyone"
			}
			fmt.Fprintf(g.stdout, "%s deleted %s\n", m.ID, where)
			return nil
		},
	}
	cmd.Flags().BoolVar(&forEveryone, "for-everyone", false, "delete it on the other side too (only the author may)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the message as deleted)")
	return cmd
}

func shortPeer(p string) string {
	if len(p) > 12 {
		return "…" + p[len(p)-8:]
	}
	return p
}

// orShort is a name the node gave, else the short form of the peer ID.
func orShort(name, p string) string {
	if name != "" {
		return name
	}
	return shortPeer(p)
}

// quote is how a reply or reaction shows the message it refers to: its
// text, quoted and cut short, else (not here) its ID.
func quote(text, id string) string {
	if text == "" {
		return id
	}
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > 60 {
		text = string(r[:59]) + "…"
	}
	return "“" + text + "”"
}

func newSearchCmd(g *globals) *cobra.Command {
	var with string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "search TEXT",
		Short: "Search the history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			msgs, err := c.Search(cmd.Context(), args[0], with)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(msgs)
			}
			if len(msgs) == 0 {
				fmt.Fprintln(g.stdout, "no messages found")
				return nil
			}
			var where func(*api.Message) string
			if with == "" {
				if where, err = conversationNames(cmd, c); err != nil {
					return err
				}
			}
			printMessages(g, msgs, where)
			return nil
		},
	}
	cmd.Flags().StringVar(&with, "with", "", "only the conversation with this friend, or this group")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newReadCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "read FRIEND|GROUP",
		Short: "Mark a conversation read (and tell the friend, unless read receipts are off)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.MarkRead(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if res.Marked == 1 {
				return g.report(asJSON, res, "marked 1 message read")
			}
			return g.report(asJSON, res, "marked %d messages read", res.Marked)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

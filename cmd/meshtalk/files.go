package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/meshtalk/meshtalk/api"
)

func newFileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "file", Short: "Send, list and fetch files"}
	cmd.AddCommand(newFileSendCmd(g), newFileListCmd(g), newFileGetCmd(g), newFileCancelCmd(g))
	return cmd
}

func newFileSendCmd(g *globals) *cobra.Command {
	var message string
	var drop, asJSON bool
	cmd := &cobra.Command{
		Use:   "send FRIEND PATH",
		Short: "Offer a file or a whole folder to a friend; they fetch it with `meshtalk file get`",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendFile(cmd, g, api.SendFileRequest{To: args[0], Path: args[1], Message: message, Drop: drop}, asJSON)
		},
	}
	cmd.Flags().StringVar(&message, "message", "", "a caption")
	cmd.Flags().BoolVar(&drop, "drop", false, "leave it on the friend's relay, sealed to them (what happens by itself when they are offline)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newFileListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List files offered to and by you, and downloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			files, err := c.Files(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(files)
			}
			if len(files) == 0 {
				fmt.Fprintln(g.stdout, "no files")
				return nil
			}
			return printFiles(g, files)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printFiles(g *globals, files []api.File) error {
	tw := newTable(g.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tSIZE\tPEER\tSTATE")
	for _, f := range files {
		who := "from " + orShort(f.FromName, f.From.String())
		switch {
		case f.Outgoing && f.Group != "":
			who = "to group " + cmp.Or(f.GroupName, shortPeer(f.Group))
		case f.Outgoing:
			who = "to " + orShort(f.ToName, f.To.String())
		case f.Group != "":
			who += " in " + cmp.Or(f.GroupName, shortPeer(f.Group))
		}
		state := f.State
		switch f.State {
		case "available", "failed":
			if !f.Outgoing {
				state += " (meshtalk file get " + f.ID[:16] + ")"
			}
		case "dropped":
			state = "dropped on relay " + shortPeer(f.Relay.String())
		case "delivered":
			if f.Fetched != nil {
				state += ", fetched " + f.Fetched.Local().Format(time.DateTime)
			}
		}
		if f.State == "downloading" && f.Size > 0 {
			state += fmt.Sprintf(" %d%%", f.Bytes*100/f.Size)
			if f.Rate > 0 {
				state += fmt.Sprintf(" %s/s, %s left", humanBytes(uint64(f.Rate)), (time.Duration(f.ETASeconds) * time.Second).String())
			}
		}
		if f.Path != "" {
			state += " " + f.Path
		}
		if f.Error != "" {
			state += ": " + f.Error
		}
		if f.BytesServed > 0 {
			state += ", served " + humanBytes(f.BytesServed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.ID[:16], f.Name, humanBytes(f.Size), who, state)
		for _, sv := range f.Served {
			fmt.Fprintf(tw, "\t\t\t  %s\t%s\n", orShort(sv.Name, sv.Peer.String()), servedState(sv))
		}
	}
	return tw.Flush()
}

// servedState says what went to one peer: bytes, the rate while it goes,
// when the peer had it all.
func servedState(sv api.Served) string {
	s := "served " + humanBytes(sv.Bytes)
	if sv.Rate > 0 {
		s += fmt.Sprintf(", %s/s", humanBytes(uint64(sv.Rate)))
	}
	if sv.Finished != nil {
		s += ", finished " + sv.Finished.Local().Format(time.DateTime)
	}
	return s
}

func newFileGetCmd(g *globals) *cobra.Command {
	var out string
	var noWait, asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID|NAME",
		Short: "Fetch a file offered to you; it resumes by itself if interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			abs := "" // the node's downloads folder ([files] dir)
			if out != "" {
				var err error
				if abs, err = filepath.Abs(out); err != nil {
					return err
				}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			id, err := fullFileID(cmd, c, args[0])
			if err != nil {
				return err
			}
			// Follow before starting, so that no event is missed.
			stream, err := c.Events(cmd.Context())
			if err != nil {
				return err
			}
			defer stream.Close()
			f, err := c.GetFile(cmd.Context(), id, abs)
			if err != nil {
				return err
			}
			switch {
			case f.State == "done":
				if abs != "" && filepath.Dir(f.Path) != abs {
					fmt.Fprintf(g.stderr, "%s was fetched before, into %s: --out is for a file not fetched yet\n", f.Name, filepath.Dir(f.Path))
				}
				return g.report(asJSON, f, "%s", f.Path)
			case noWait:
				return g.report(asJSON, f, "downloading %s in the background", f.Name)
			}
			path, err := followDownload(cmd, g, stream, f, args[0])
			if err != nil || path == "" {
				return err
			}
			if asJSON {
				if f, err = fileOf(cmd, c, id); err != nil {
					return err
				}
			}
			return g.report(asJSON, f, "%s", path)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to save into (default: the downloads folder, config.toml's [files] dir)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start the download and return")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// progress shows how far a download is on stderr: a bar redrawn in
// place on a terminal, else (a pipe, a file, a log) a plain line every
// tenth of the way.
type progress struct {
	bar  *progressbar.ProgressBar // on a terminal
	w    io.Writer
	name string
	size uint64
	last uint64 // tenths shown
}

func newProgress(w io.Writer, name string, size uint64) *progress {
	p := &progress{w: w, name: name, size: size}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(int64(size),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	return p
}

func (p *progress) set(n uint64) {
	if p.bar != nil {
		p.bar.Set64(int64(n))
		return
	}
	if p.size == 0 {
		return
	}
	// A line once a tenth more is here, saying how much is (events
	// come as the download goes, so one may cross two tenths).
	if tenth := n * 10 / p.size; tenth > p.last && tenth < 10 {
		p.last = tenth
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.name, n*100/p.size, humanBytes(n), humanBytes(p.size))
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		return
	}
	fmt.Fprintf(p.w, "%s: done (%s)\n", p.name, humanBytes(p.size))
}

func (p *progress) exit() {
	if p.bar != nil {
		p.bar.Exit()
	}
}

// followDownload shows a download's progress on stderr until it is
// done (bytes, rate and time left) and returns where the file is; ""
// when the command is interrupted and the download goes on.
func followDownload(cmd *cobra.Command, g *globals, stream *api.EventStream, f *api.File, arg string) (string, error) {
	bar := newProgress(g.stderr, f.Name, f.Size)
	for {
		ev, err := stream.Next()
		if err != nil {
			if cmd.Context().Err() != nil {
				fmt.Fprintln(g.stderr, "\nstill downloading in the background")
				return "", nil
			}
			return "", err
		}
		d, _ := ev.Data.(map[string]any)
		if d["id"] != f.ID {
			continue
		}
		switch ev.Type {
		case "transfer.progress":
			done, _ := d["bytes"].(float64)
			bar.set(uint64(done))
		case "transfer.done":
			bar.finish()
			path, _ := d["path"].(string)
			return path, nil
		case "transfer.failed":
			bar.exit()
			return "", fmt.Errorf("download failed: %v (run `meshtalk file get %s` again to retry)", d["error"], arg)
		}
	}
}

func newFileCancelCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a download and delete its partial file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			id, err := fullFileID(cmd, c, args[0])
			if err != nil {
				return err
			}
			if err := c.CancelFile(cmd.Context(), id); err != nil {
				return err
			}
			return g.report(asJSON, cancelled{ID: id, Cancelled: true}, "cancelled")
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

// cancelled is what `file cancel --json` prints: the node answers a
// cancel with no body.
type cancelled struct {
	ID        string `json:"id"`
	Cancelled bool   `json:"cancelled"`
}

// sendFile offers the file at req.Path (relative to here) and says
// what the node did with it: the node's answer as JSON with asJSON.
func sendFile(cmd *cobra.Command, g *globals, req api.SendFileRequest, asJSON bool) error {
	var err error
	if req.Path, err = filepath.Abs(req.Path); err != nil {
		return err
	}
	c, err := g.client(cmd.Context())
	if err != nil {
		return err
	}
	sent, err := c.SendFile(cmd.Context(), req)
	if err != nil {
		return err
	}
	if sent.Message == nil || sent.Message.File == nil {
		return fmt.Errorf("the node answered no message")
	}
	// Dropped through the friend's relay too, or offered directly only.
	if sent.Dropped {
		return g.report(asJSON, sent, "%s dropped %s (%s) on the relay for %s: it waits there, sealed, until they fetch it (file %s)",
			sent.Message.ID, sent.Name, humanBytes(uint64(sent.Size)), orShort(sent.ToName, sent.To), sent.Message.File.ID)
	}
	return g.report(asJSON, sent, "%s %s (file %s)", sent.Message.ID, sent.Message.State, sent.Message.File.ID)
}

// fullFileID finds the file that `file get` or `file cancel` means: a
// unique prefix of its ID (4 characters or more, as `file list` prints
// it), else its name, among the files offered to this node.
func fullFileID(cmd *cobra.Command, c *api.Client, ref string) (string, error) {
	files, err := c.Files(cmd.Context())
	if err != nil {
		return "", err
	}
	var byID, byName []string
	for _, f := range files {
		switch {
		case len(ref) >= 4 && strings.HasPrefix(f.ID, ref):
			byID = appendNew(byID, f.ID)
		case !f.Outgoing && f.Name == ref:
			byName = appendNew(byName, f.ID)
		}
	}
	found := byID
	if len(found) == 0 {
		found = byName
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no file with ID or name %q (see `meshtalk file list`)", ref)
	case 1:
		return found[0], nil
	}
	for i, id := range found {
		found[i] = id[:min(16, len(id))]
	}
	return "", fmt.Errorf("%q fits more than one file (%s): give more of the ID", ref, strings.Join(found, ", "))
}

// fileOf is the file with the full ID id as the node lists it now.
func fileOf(cmd *cobra.Command, c *api.Client, id string) (*api.File, error) {
	files, err := c.Files(cmd.Context())
	if err != nil {
		return nil, err
	}
	for i := range files {
		if files[i].ID == id && !files[i].Outgoing {
			return &files[i], nil
		}
	}
	return nil, fmt.Errorf("file %s is no longer listed", id)
}

// appendNew appends id unless ids has it (a file offered twice is listed
// twice).
func appendNew(ids []string, id string) []string {
	if slices.Contains(ids, id) {
		return ids
	}
	return append(ids, id)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/chat"
)

func newFileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "file", Short: "Send, list and fetch files"}
	var message string
	var drop bool
	send := &cobra.Command{
		Use:   "send FRIEND PATH",
		Short: "Offer a file to a friend; they fetch it with `meshtalk file get`",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendFile(cmd, g, args[0], args[1], message, drop)
		},
	}
	send.Flags().StringVar(&message, "message", "", "a caption")
	send.Flags().BoolVar(&drop, "drop", false, "leave it on the friend's relay, sealed to them (what happens by itself when they are offline)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List files offered to and by you, and downloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var files []api.File
			if err := g.call(cmd, "GET", "/api/v1/files", nil, &files); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(files)
			}
			if len(files) == 0 {
				fmt.Fprintln(g.stdout, "no files")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSIZE\tPEER\tSTATE")
			for _, f := range files {
				who := "from " + shortPeer(f.From.String())
				if f.Outgoing {
					who = "to " + shortPeer(f.To.String())
				}
				state := f.State
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.ID[:16], f.Name, humanBytes(f.Size), who, state)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var out string
	var noWait bool
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Fetch a file offered to you; it resumes by itself if interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("give --out DIR: %w", err)
				}
				out = filepath.Join(home, "Downloads")
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			id, err := fullFileID(cmd, g, args[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			// Follow before starting, so that no event is missed.
			stream, err := c.Events(cmd.Context())
			if err != nil {
				return err
			}
			defer stream.Close()
			var f api.File
			if err := c.Call(cmd.Context(), "POST", "/api/v1/files/"+id+"/get", api.GetFileRequest{Dir: abs}, &f); err != nil {
				return err
			}
			if f.State == "done" {
				fmt.Fprintln(g.stdout, f.Path)
				return nil
			}
			if noWait {
				fmt.Fprintf(g.stdout, "downloading %s in the background\n", f.Name)
				return nil
			}
			// Bytes, rate and time left, on stderr; the path alone on stdout.
			bar := progressbar.NewOptions64(int64(f.Size),
				progressbar.OptionSetWriter(g.stderr),
				progressbar.OptionSetDescription(f.Name),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(g.stderr) }))
			for {
				ev, err := stream.Next()
				if err != nil {
					if cmd.Context().Err() != nil {
						fmt.Fprintln(g.stderr, "\nstill downloading in the background")
						return nil
					}
					return err
				}
				d, _ := ev.Data.(map[string]any)
				if d["id"] != id {
					continue
				}
				switch ev.Type {
				case "transfer.progress":
					done, _ := d["bytes"].(float64)
					bar.Set64(int64(done))
				case "transfer.done":
					bar.Finish()
					fmt.Fprintln(g.stdout, d["path"])
					return nil
				case "transfer.failed":
					bar.Exit()
					return fmt.Errorf("download failed: %v (run `meshtalk file get %s` again to retry)", d["error"], args[0])
				}
			}
		},
	}
	get.Flags().StringVar(&out, "out", "", "folder to save into (default ~/Downloads)")
	get.Flags().BoolVar(&noWait, "no-wait", false, "start the download and return")
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a download and delete its partial file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := fullFileID(cmd, g, args[0])
			if err != nil {
				return err
			}
			if err := g.call(cmd, "POST", "/api/v1/files/"+id+"/cancel", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "cancelled")
			return nil
		},
	}
	cmd.AddCommand(send, list, get, cancel)
	return cmd
}

func sendFile(cmd *cobra.Command, g *globals, to, path, message string, drop bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// The answer is a message (offered directly) or a drop (through the
	// friend's relay).
	var raw json.RawMessage
	if err := g.call(cmd, "POST", "/api/v1/files", api.SendFileRequest{To: to, Path: abs, Message: message, Drop: drop}, &raw); err != nil {
		return err
	}
	var d api.FileDropped
	if json.Unmarshal(raw, &d) == nil && d.Dropped {
		fmt.Fprintf(g.stdout, "dropped %s (%s) on the relay for %s: it waits there, sealed, until they fetch it\n", d.Name, humanBytes(uint64(d.Size)), shortPeer(d.To))
		return nil
	}
	var m chat.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s %s (file %s)\n", m.ID, m.State, m.File.ID)
	return nil
}

// fullFileID expands a prefix of a file ID (as `file list` prints it).
func fullFileID(cmd *cobra.Command, g *globals, prefix string) (string, error) {
	var files []api.File
	if err := g.call(cmd, "GET", "/api/v1/files", nil, &files); err != nil {
		return "", err
	}
	found := ""
	for _, f := range files {
		if len(prefix) >= 4 && len(f.ID) >= len(prefix) && f.ID[:len(prefix)] == prefix {
			if found != "" && found != f.ID {
				return "", fmt.Errorf("%q matches more than one file: give more of the ID", prefix)
			}
			found = f.ID
		}
	}
	if found == "" {
		return "", fmt.Errorf("no file with ID %q (see `meshtalk file list`)", prefix)
	}
	return found, nil
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

package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

// callFlags are the node's own endpoint's media and how long to stay.
type callFlags struct {
	audio, video, record string
	loop                 bool
	stay                 time.Duration
	asJSON               bool
}

func (f *callFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.audio, "audio", "", "play this Ogg/Opus file into the call")
	cmd.Flags().StringVar(&f.video, "video", "", "play this IVF/VP8 file into the call (a video call)")
	cmd.Flags().StringVar(&f.record, "record", "", "record what arrives into this folder ("+api.CallRecordAudio+", "+api.CallRecordVideo+")")
	cmd.Flags().BoolVar(&f.loop, "loop", false, "play the files again when they end")
	cmd.Flags().DurationVar(&f.stay, "for", 0, "hang up this long after the call is answered (0: stay until it ends; Ctrl-C hangs up)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the call's events as JSON lines")
}

// media is the flags' files as the node (another process) finds them.
func (f *callFlags) media() (api.CallMedia, error) {
	m := api.CallMedia{Loop: f.loop}
	for _, p := range []struct {
		in  string
		out *string
	}{{f.audio, &m.AudioFile}, {f.video, &m.VideoFile}, {f.record, &m.Record}} {
		if p.in == "" {
			continue
		}
		abs, err := filepath.Abs(p.in)
		if err != nil {
			return m, err
		}
		*p.out = abs
	}
	return m, nil
}

func newCallCmd(g *globals) *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "call FRIEND",
		Short: "Voice and video calls: call a friend from this node (play files, record), answer, decline, hang up, stats",
		Long: "Call a friend with the node's own endpoint: it plays an Ogg/Opus file (--audio) and an IVF/VP8 file\n" +
			"(--video) into the call and records what arrives (--record). The command stays until the call ends,\n" +
			"or --for after it is answered; Ctrl-C hangs up. The web UI calls with the browser's camera and microphone.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.media()
			if err != nil {
				return err
			}
			return g.runCall(cmd.Context(), &f, func(ctx context.Context, c *api.Client) (*api.CallInfo, error) {
				return c.StartCall(ctx, api.CallRequest{Peer: args[0], Audio: true, Video: f.video != "", CallMedia: m})
			})
		},
	}
	f.add(cmd)
	cmd.AddCommand(newCallAnswerCmd(g), newCallEndCmd(g, "decline", "Decline the call that rings (or call ID)", (*api.Client).DeclineCall),
		newCallEndCmd(g, "hangup", "Hang up the live call (or call ID)", (*api.Client).HangupCall), newCallListCmd(g), newCallStatsCmd(g))
	return cmd
}

func newCallAnswerCmd(g *globals) *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "answer [ID]",
		Short: "Answer the call that rings (or call ID) on this node's own endpoint",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.media()
			if err != nil {
				return err
			}
			return g.runCall(cmd.Context(), &f, func(ctx context.Context, c *api.Client) (*api.CallInfo, error) {
				return c.AnswerCall(ctx, firstArg(args), api.AnswerRequest{CallMedia: m})
			})
		},
	}
	f.add(cmd)
	return cmd
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// runCall places or answers a call (start), then follows it until it
// ends, or hangs up after --for or on Ctrl-C.
func (g *globals) runCall(ctx context.Context, f *callFlags, start func(context.Context, *api.Client) (*api.CallInfo, error)) error {
	c, err := g.client(ctx)
	if err != nil {
		return err
	}
	// Subscribe first: the call's events must not slip by.
	stream, err := c.Events(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	info, err := start(ctx, c)
	if err != nil {
		return err
	}
	g.callLine(f, "call "+info.ID, info.State, fmt.Sprintf("%s with %s", info.State, info.Peer))
	events := make(chan eventOrErr, 16)
	go func() {
		for {
			ev, err := stream.Next()
			events <- eventOrErr{ev.Type, ev.Data, err}
			if err != nil {
				return
			}
		}
	}()
	var deadline <-chan time.Time
	if info.State == api.CallStateActive && f.stay > 0 {
		deadline = time.After(f.stay)
	}
	for {
		select {
		case <-ctx.Done():
			return g.hangup(c, info.ID, f, "interrupted")
		case <-deadline:
			return g.hangup(c, info.ID, f, "--for elapsed")
		case ev := <-events:
			if ev.err != nil {
				return fmt.Errorf("event stream ended: %w", ev.err)
			}
			d, _ := ev.data.(map[string]any)
			if d == nil || d["id"] != info.ID {
				continue
			}
			switch ev.typ {
			case api.EventCallAccepted:
				g.callLine(f, "answered", "", fmt.Sprintf("by %v", d["endpoint"]))
				if f.stay > 0 {
					deadline = time.After(f.stay)
				}
			case api.EventCallEnded:
				return g.ended(f, d)
			}
		}
	}
}

type eventOrErr struct {
	typ  string
	data any
	err  error
}

func (g *globals) callLine(f *callFlags, what, state, detail string) {
	if f.asJSON {
		g.printJSONLine(map[string]string{"event": what, "state": state, "detail": detail})
		return
	}
	fmt.Fprintf(g.stdout, "%s %s %s\n", time.Now().Format(time.TimeOnly), what, detail)
}

// hangup ends the call when the command stops first, and reports the
// end.
func (g *globals) hangup(c *api.Client, id string, f *callFlags, why string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.HangupCall(ctx, id)
	if err != nil {
		return fmt.Errorf("hang up (%s): %w", why, err)
	}
	return g.ended(f, map[string]any{"reason": info.Reason, "accepted": info.Accepted.Format(time.RFC3339Nano), "ended": info.Ended.Format(time.RFC3339Nano), "error": info.Error})
}

// ended reports how a call ended; a call that never connected is an
// error (the exit status says so).
func (g *globals) ended(f *callFlags, d map[string]any) error {
	reason, _ := d["reason"].(string)
	var dur time.Duration
	acc, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(d["accepted"]))
	end, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(d["ended"]))
	if !acc.IsZero() && acc.Year() > 1 && !end.IsZero() {
		dur = end.Sub(acc).Round(time.Second)
	}
	detail := reason
	if dur > 0 {
		detail += ", " + dur.String()
	}
	if e, _ := d["error"].(string); e != "" {
		detail += ": " + e
	}
	g.callLine(f, "ended", reason, detail)
	switch reason {
	case api.CallHangup:
		return nil
	case api.CallDeclined, api.CallBusy, api.CallMissed:
		return errors.New("the call was " + map[string]string{api.CallDeclined: "declined", api.CallBusy: "busy", api.CallMissed: "not answered"}[reason])
	}
	return fmt.Errorf("the call ended: %s", detail)
}

func newCallEndCmd(g *globals, use, short string, act func(*api.Client, context.Context, string) (*api.CallInfo, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use + " [ID]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			info, err := act(c, cmd.Context(), firstArg(args))
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(info)
			}
			fmt.Fprintf(g.stdout, "call %s with %s: %s\n", info.ID, info.Peer, info.Reason)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCallListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the live calls and the latest ended ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			cs, err := c.Calls(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(cs)
			}
			if len(cs) == 0 {
				fmt.Fprintln(g.stdout, "no calls")
				return nil
			}
			tw := newTable(g.stdout)
			fmt.Fprintln(tw, "ID\tPEER\tDIRECTION\tMEDIA\tSTATE\tSTARTED\tLENGTH")
			for _, i := range cs {
				dir, media := "in", "audio"
				if i.Outgoing {
					dir = "out"
				}
				if i.Video {
					media = "video"
				}
				state := i.State
				if i.Reason != "" {
					state += " (" + i.Reason + ")"
				}
				length := "-"
				if d := i.Duration(); d > 0 {
					length = d.Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Peer, dir, media, state, i.Started.Local().Format(time.DateTime), length)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCallStatsCmd(g *globals) *cobra.Command {
	var asJSON bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "stats [ID]",
		Short: "Show a call's media on this node's endpoint: ICE path (host, srflx, relay: which relay), RTT, jitter, loss, bitrate, frames",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			for {
				st, err := c.CallStats(cmd.Context(), firstArg(args))
				if err != nil {
					return err
				}
				if asJSON {
					err = g.printJSONLine(st)
				} else {
					err = printCallStats(g, st)
				}
				if err != nil || every <= 0 {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&every, "every", 0, "show them again this often, live, until the call ends (e.g. 1s)")
	return cmd
}

func printCallStats(g *globals, st *api.CallStats) error {
	path := st.Path
	if path == "" {
		path = "-"
	}
	if st.Path == "relay" {
		via := st.Relay
		if via == "" {
			via = st.TURN
		}
		path += " via " + via
		if st.RelayProtocol != "" {
			path += " over " + st.RelayProtocol
		}
	}
	fmt.Fprintf(g.stdout, "call %s  %s  path %s (%s -> %s)  rtt %.1f ms\n", st.CallID, st.State, path, st.Local, st.Remote, st.RTTMs)
	tw := newTable(g.stdout)
	fmt.Fprintln(tw, "MEDIA\tSENT\tRECEIVED\tLOST\tJITTER\tBITRATE")
	for _, m := range []struct {
		name string
		s    api.CallStats
	}{{"audio", *st}, {"video", *st}} {
		ms := m.s.Audio
		unit := "packets"
		if m.name == "video" {
			ms, unit = m.s.Video, "frames"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d %s\t%d\t%.1f ms\t%.0f kbit/s\n", m.name, ms.FramesSent, ms.FramesReceived, unit, ms.PacketsLost, ms.JitterMs, ms.BitrateKbps)
	}
	return tw.Flush()
}

package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/meshtalk/meshtalk/node"
)

// Client talks to a running node's local API. Client commands find the
// node through the api.json in its home.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Dial returns a client for the node running on home. When none runs, the
// error wraps ErrNotRunning and says how to start one.
func Dial(ctx context.Context, home node.Home) (*Client, error) {
	notRunning := fmt.Errorf("%w on %s: start one with `meshtalk run`", ErrNotRunning, home)
	b, err := os.ReadFile(home.APIInfoPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, notRunning
	}
	if err != nil {
		return nil, fmt.Errorf("api: read api.json: %w", err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return nil, fmt.Errorf("api: %s is damaged; restart the node (`meshtalk run`)", home.APIInfoPath())
	}
	c := NewClient(info.Addr, info.Token)
	// A node killed without a clean stop leaves api.json behind: check
	// that somebody answers.
	if err := c.Get(ctx, "/api/v1/status", nil); err != nil {
		var aerr *Error
		if errors.As(err, &aerr) {
			return nil, err
		}
		return nil, notRunning
	}
	return c, nil
}

// NewClient returns a client for the API at addr with token.
func NewClient(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{}}
}

// Get fetches path and decodes the JSON answer into out (nil: discard). An
// API error comes back as *Error.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Call(ctx, http.MethodGet, path, nil, out)
}

// Call sends a request with body (nil: none; else JSON) and decodes the
// JSON answer into out (nil: discard). An API error comes back as *Error.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		in = bytes.NewReader(b)
	}
	resp, err := c.doBody(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: decode %s: %w", path, err)
	}
	return nil
}

// lines fetches path, an NDJSON stream, and calls fn with each line as
// it arrives. An API error comes back as *Error.
func (c *Client) lines(ctx context.Context, path string, fn func([]byte) error) error {
	resp, err := c.do(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	return c.doBody(ctx, method, path, nil)
}

func (c *Client) doBody(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var body errorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.Error.Code == "" {
			return nil, &Error{Code: CodeInternal, Message: "unexpected answer " + resp.Status, Status: resp.StatusCode}
		}
		body.Error.Status = resp.StatusCode
		return nil, &body.Error
	}
	return resp, nil
}

// Events opens the event stream; read it with Next and end it with Close
// or by cancelling ctx. It returns once the node has subscribed, so no
// event published after it returns is missed.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/events")
	if err != nil {
		return nil, err
	}
	s := &EventStream{body: resp.Body, r: bufio.NewReader(resp.Body)}
	// The server's first line is a comment that confirms the subscription,
	// so events published after Events returns are not missed.
	if _, err := s.r.ReadString('\n'); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("api: events: %w", err)
	}
	return s, nil
}

// EventStream is an open event stream.
type EventStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// Next returns the next event. It returns io.EOF when the stream ends.
func (s *EventStream) Next() (node.Event, error) {
	var data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return node.Event{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && data != "":
			var ev node.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return node.Event{}, fmt.Errorf("api: event: %w", err)
			}
			return ev, nil
		}
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

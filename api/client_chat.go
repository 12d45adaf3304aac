package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The typed methods of Client: one per endpoint, each answering what the
// endpoint answers (docs/api.md).

// call makes one request and decodes its answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, body any) (T, error) {
	var out T
	err := c.Call(ctx, method, path, body, &out)
	return out, err
}

// ID is the node's peer ID, addresses and friend code.
func (c *Client) ID(ctx context.Context) (*ID, error) {
	return call[*ID](ctx, c, http.MethodGet, "/api/v1/id", nil)
}

// Status is the node's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return call[*Status](ctx, c, http.MethodGet, "/api/v1/status", nil)
}

// Peers lists the node's connections with their paths.
func (c *Client) Peers(ctx context.Context) ([]ConnInfo, error) {
	return call[[]ConnInfo](ctx, c, http.MethodGet, "/api/v1/peers", nil)
}

// PingRequest is what Ping measures; zero values are the node's
// defaults.
type PingRequest struct {
	Peer     string
	Count    int
	Interval time.Duration
	Timeout  time.Duration
}

// Ping measures round trips to a peer, calling fn with each as it comes.
func (c *Client) Ping(ctx context.Context, req PingRequest, fn func(PingResult) error) error {
	q := url.Values{"peer": {req.Peer}}
	if req.Count != 0 {
		q.Set("count", strconv.Itoa(req.Count))
	}
	if req.Interval != 0 {
		q.Set("interval", req.Interval.String())
	}
	if req.Timeout != 0 {
		q.Set("timeout", req.Timeout.String())
	}
	return c.lines(ctx, "/api/v1/ping?"+q.Encode(), func(line []byte) error {
		var r PingResult
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		return fn(r)
	})
}

// Friends lists the contacts with their presence (pendingOnly: only the
// requests waiting for an answer).
func (c *Client) Friends(ctx context.Context, pendingOnly bool) ([]Friend, error) {
	path := "/api/v1/friends"
	if pendingOnly {
		path += "?pending=true"
	}
	return call[[]Friend](ctx, c, http.MethodGet, path, nil)
}

// AddFriend sends a friend request to a friend code, peer ID, /p2p/
// multiaddr or username on a relay.
func (c *Client) AddFriend(ctx context.Context, peer, message string) (*Friend, error) {
	return call[*Friend](ctx, c, http.MethodPost, "/api/v1/friends", AddFriendRequest{Peer: peer, Message: message})
}

func (c *Client) friendAction(ctx context.Context, friend, action string) (*Friend, error) {
	return call[*Friend](ctx, c, http.MethodPost, "/api/v1/friends/"+url.PathEscape(friend)+"/"+action, nil)
}

// AcceptFriend accepts a friend request.
func (c *Client) AcceptFriend(ctx context.Context, friend string) (*Friend, error) {
	return c.friendAction(ctx, friend, "accept")
}

// DeclineFriend declines a friend request.
func (c *Client) DeclineFriend(ctx context.Context, friend string) (*Friend, error) {
	return c.friendAction(ctx, friend, "decline")
}

// RemoveFriend removes a friend on both sides.
func (c *Client) RemoveFriend(ctx context.Context, friend string) (*Friend, error) {
	return c.friendAction(ctx, friend, "remove")
}

// BlockFriend blocks a peer.
func (c *Client) BlockFriend(ctx context.Context, friend string) (*Friend, error) {
	return c.friendAction(ctx, friend, "block")
}

// Friend is one contact by any name the node takes, with the path it
// is connected by now.
func (c *Client) Friend(ctx context.Context, name string) (*Friend, error) {
	return call[*Friend](ctx, c, http.MethodGet, "/api/v1/friends/"+url.PathEscape(name), nil)
}

// Profile is the node's profile.
func (c *Client) Profile(ctx context.Context) (*Profile, error) {
	return call[*Profile](ctx, c, http.MethodGet, "/api/v1/profile", nil)
}

// SetProfile changes the node's profile.
func (c *Client) SetProfile(ctx context.Context, req ProfileRequest) (*Profile, error) {
	return call[*Profile](ctx, c, http.MethodPut, "/api/v1/profile", req)
}

// Faces lists the faces by name.
func (c *Client) Faces(ctx context.Context) (Faces, error) {
	return call[Faces](ctx, c, http.MethodGet, "/api/v1/faces", nil)
}

// Send sends a message to a friend.
func (c *Client) Send(ctx context.Context, req SendRequest) (*Message, error) {
	return call[*Message](ctx, c, http.MethodPost, "/api/v1/messages", req)
}

// EditMessage changes the text of a message this node sent (a direct
// or a group message).
func (c *Client) EditMessage(ctx context.Context, id, text string) (*Message, error) {
	return call[*Message](ctx, c, http.MethodPatch, "/api/v1/messages/"+url.PathEscape(id), EditRequest{Text: text})
}

// DeleteMessage deletes a message: for everyone (its author only), or on
// this node only.
func (c *Client) DeleteMessage(ctx context.Context, id string, forEveryone bool) (*Message, error) {
	path := "/api/v1/messages/" + url.PathEscape(id)
	if forEveryone {
		path += "?for_everyone=true"
	}
	return call[*Message](ctx, c, http.MethodDelete, path, nil)
}

// History is a page of a conversation with a friend or group: up to
// limit (0: the node's default) messages older than before ("": the
// newest).
func (c *Client) History(ctx context.Context, with, before string, limit int) (*HistoryPage, error) {
	q := url.Values{"with": {with}}
	if before != "" {
		q.Set("before", before)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return call[*HistoryPage](ctx, c, http.MethodGet, "/api/v1/history?"+q.Encode(), nil)
}

// Search finds messages whose text contains text, in the conversation
// with ("": all).
func (c *Client) Search(ctx context.Context, text, with string) ([]*Message, error) {
	q := url.Values{"q": {text}}
	if with != "" {
		q.Set("with", with)
	}
	return call[[]*Message](ctx, c, http.MethodGet, "/api/v1/search?"+q.Encode(), nil)
}

// MarkRead marks a conversation read.
func (c *Client) MarkRead(ctx context.Context, with string) (*ReadResult, error) {
	return call[*ReadResult](ctx, c, http.MethodPost, "/api/v1/read", ReadRequest{With: with})
}

// Conversations lists every friend's and group's conversation with its
// newest message and unread count.
func (c *Client) Conversations(ctx context.Context) ([]*Conversation, error) {
	return call[[]*Conversation](ctx, c, http.MethodGet, "/api/v1/conversations", nil)
}

// Avatar is the image of this node's or a contact's avatar by its ID.
func (c *Client) Avatar(ctx context.Context, id string) (*Avatar, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/avatars/"+url.PathEscape(id))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("api: avatar: %w", err)
	}
	return &Avatar{Data: b, Type: resp.Header.Get("Content-Type")}, nil
}

// MessageInfo returns a message (direct or of a group) with how it
// travelled: GET /api/v1/messages/{id}/info.
func (c *Client) MessageInfo(ctx context.Context, id string) (*MessageTrace, error) {
	return call[*MessageTrace](ctx, c, http.MethodGet, "/api/v1/messages/"+url.PathEscape(id)+"/info", nil)
}

// Stop asks the node to stop cleanly: it parks what is queued for friends
// away, says what, and exits. POST /api/v1/stop.
func (c *Client) Stop(ctx context.Context) (*StopReport, error) {
	return call[*StopReport](ctx, c, http.MethodPost, "/api/v1/stop", nil)
}

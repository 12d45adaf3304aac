package api

import (
	"context"
	"net/http"
	"net/url"
)

// SendFile sends a file to a friend: offered directly or dropped on the
// friend's relay (FileSent.Dropped).
func (c *Client) SendFile(ctx context.Context, req SendFileRequest) (*FileSent, error) {
	return call[*FileSent](ctx, c, http.MethodPost, "/api/v1/files", req)
}

// Files lists the file offers, sent and received.
func (c *Client) Files(ctx context.Context) ([]File, error) {
	return call[[]File](ctx, c, http.MethodGet, "/api/v1/files", nil)
}

// GetFile starts downloading file id into dir.
func (c *Client) GetFile(ctx context.Context, id, dir string) (*File, error) {
	return call[*File](ctx, c, http.MethodPost, "/api/v1/files/"+url.PathEscape(id)+"/get", GetFileRequest{Dir: dir})
}

// CancelFile stops a download and deletes its partial file.
func (c *Client) CancelFile(ctx context.Context, id string) error {
	return c.Call(ctx, http.MethodPost, "/api/v1/files/"+url.PathEscape(id)+"/cancel", nil, nil)
}

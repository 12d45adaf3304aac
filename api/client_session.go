package api

import (
	"context"
	"net/http"
)

// LoginCode asks the node for a one-time login link to its web UI.
func (c *Client) LoginCode(ctx context.Context) (*LoginCode, error) {
	var lc LoginCode
	if err := c.Call(ctx, http.MethodPost, "/api/v1/login-codes", nil, &lc); err != nil {
		return nil, err
	}
	return &lc, nil
}

package nodetest

import (
	"context"
	"io"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/relay"
)

// RegisterBareClient starts the relay client on a bare libp2p host h (an
// in-memory datastore, h's own key), registers name on the relay at info,
// which logs it in, and returns the client to close. Benchmarks use it to
// load a relay with many logged-in users cheaply.
func RegisterBareClient(ctx context.Context, h host.Host, info peer.AddrInfo, name string) (io.Closer, error) {
	c, err := relay.NewClient(ctx, h, dssync.MutexWrap(datastore.NewMapDatastore()), relay.ClientConfig{Key: h.Peerstore().PrivKey(h.ID())})
	if err != nil {
		return nil, err
	}
	if _, err := c.Register(ctx, info, name, ""); err != nil {
		return c, err
	}
	return c, nil
}

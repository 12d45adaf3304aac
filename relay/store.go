package relay

// The relay's datastore, in the namespace node gives it (/relay).
//
// On a relay (Server):
//
//	/schema                                   "1"
//	/names/<folded name>                      the owner's peer ID (bytes)
//	/accounts/<peer ID>                       pb.Account
//	/mbox/<recipient>/<deposited ms %016x>/<id hex>
//	                                          pb.StoredEnvelope: a sealed envelope
//	/invites/<sha256 of the token, hex>       invite (JSON): uses left, expiry
//	/drops/<recipient>/<root hex>             pb.StoredDrop: a blob dropped for
//	                                          the recipient
//	/short/<short code>                       shortInvite (JSON): a group invite
//	                                          held under a short code, until it
//	                                          expires (shortinvite.go)
//	/shortby/<owner peer ID>/<short code>     "": the owner's codes, to count them
//
// On a personal node (Client):
//
//	/client/accounts/<relay peer ID>          clientAccount (JSON): a name there
//	/client/keys/<peer ID>                    a contact's sealing public key,
//	                                          checked against its identity
//	/client/names/<peer ID>                   the username a relay answered for
//	                                          that peer (the last lookup's)
//	/client/drops/<root hex>                  pendingDrop (JSON): a dropped file
//	                                          being fetched
//	/client/dropped/<root hex>                "": a dropped file fetched (a
//	                                          letter delivered again is ignored)
//
// Deposit times are fixed-width hex, so a mailbox lists oldest first and
// the sweeper reads expiry from the key alone. An envelope is synced to
// disk before its deposit is acknowledged.

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
)

const schemaVersion = "1"

func keySchema() datastore.Key { return datastore.RawKey("/schema") }

func nameKey(folded string) datastore.Key { return datastore.RawKey("/names/" + folded) }
func accountKey(p peer.ID) datastore.Key  { return datastore.RawKey("/accounts/" + p.String()) }
func mboxPrefix(p peer.ID) string         { return "/mbox/" + p.String() + "/" }
func mboxKey(p peer.ID, ms int64, id string) datastore.Key {
	return datastore.RawKey(fmt.Sprintf("/mbox/%s/%016x/%s", p, ms, id))
}
func inviteKey(hash string) datastore.Key { return datastore.RawKey("/invites/" + hash) }
func dropKey(rcpt peer.ID, root string) datastore.Key {
	return datastore.RawKey("/drops/" + rcpt.String() + "/" + root)
}
func clientAccountKey(relay peer.ID) datastore.Key {
	return datastore.RawKey("/client/accounts/" + relay.String())
}
func sealingKeyKey(p peer.ID) datastore.Key { return datastore.RawKey("/client/keys/" + p.String()) }
func userNameKey(p peer.ID) datastore.Key   { return datastore.RawKey("/client/names/" + p.String()) }

// parseMboxKey splits /mbox/<recipient>/<ms>/<id>.
func parseMboxKey(k string) (recipient peer.ID, ms int64, id string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(k, "/mbox/"), "/")
	if len(parts) != 3 {
		return "", 0, "", false
	}
	r, err := peer.Decode(parts[0])
	if err != nil {
		return "", 0, "", false
	}
	t, err := strconv.ParseInt(parts[1], 16, 64)
	if err != nil {
		return "", 0, "", false
	}
	return r, t, parts[2], true
}

// checkSchema writes the schema version on a new store and refuses one
// written by a newer version.
func checkSchema(ctx context.Context, ds datastore.Batching) error {
	v, err := ds.Get(ctx, keySchema())
	switch {
	case err == datastore.ErrNotFound:
		if err := ds.Put(ctx, keySchema(), []byte(schemaVersion)); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("relay: %w", err)
	case string(v) != schemaVersion:
		return fmt.Errorf("relay: datastore schema %q, this version reads %q", v, schemaVersion)
	}
	return nil
}

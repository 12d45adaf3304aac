package chat

// Avatars and the friend requests that wait for an answer.
//
// An avatar is stored in chat's datastore under /avatars/<BLAKE3 hash in
// hex> (at most MaxAvatarBytes), not in the shared blob store: nothing
// else refers to it there, so collectAvatars can delete every avatar that
// neither this node's profile nor a contact's refers to. Avatars stored
// by an older meshtalk in the blob store are still read from there.
//
// A stranger writes nothing to disk for its avatar: the avatar of a friend
// request that waits for an answer is held in memory (pendingAvatars) and
// stored when the request is accepted. Requests that wait are bounded in
// all (maxPending) and expire after pendingRequestTTL; each peer has at
// most one (its contact record).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/transfer"
)

const (
	// defaultMaxPending bounds the friend requests that wait for an answer.
	defaultMaxPending = 100
	// pendingRequestTTL is how long a friend request waits for an answer.
	pendingRequestTTL = 30 * 24 * time.Hour
)

func avatarKey(id string) datastore.Key { return datastore.NewKey("/avatars/" + id) }

// storeAvatar stores avatar bytes under their hash and returns it.
func (s *Service) storeAvatar(ctx context.Context, b []byte) (string, error) {
	id := transfer.HashOf(b).String()
	if err := s.ds.Put(ctx, avatarKey(id), b); err != nil {
		return "", fmt.Errorf("chat: avatar: %w", err)
	}
	return id, nil
}

// avatar reads avatar id: stored, held for a request that waits, or in
// the blob store where an older meshtalk kept it.
func (s *Service) avatar(ctx context.Context, id string) ([]byte, error) {
	h, err := transfer.ParseHash(id)
	if err != nil {
		return nil, fmt.Errorf("%w: avatar %q", ErrNotContact, id)
	}
	if b, err := s.ds.Get(ctx, avatarKey(id)); err == nil && transfer.HashOf(b) == h {
		return b, nil
	}
	s.reqMu.Lock()
	for _, held := range s.pendingAvatars {
		if held.id == id {
			s.reqMu.Unlock()
			return held.b, nil
		}
	}
	s.reqMu.Unlock()
	if s.cfg.Blobs == nil {
		return nil, fmt.Errorf("%w: avatar %q", ErrNotContact, id)
	}
	return s.cfg.Blobs.ReadAll(h, MaxAvatarBytes)
}

// hasAvatar reports whether avatar id is stored.
func (s *Service) hasAvatar(ctx context.Context, id string) bool {
	ok, err := s.ds.Has(ctx, avatarKey(id))
	if err == nil && !ok && s.cfg.Blobs != nil {
		if h, err := transfer.ParseHash(id); err == nil {
			ok = s.cfg.Blobs.Has(h)
		}
	}
	return ok
}

// storedAvatars lists the IDs of the avatars stored.
func (s *Service) storedAvatars(ctx context.Context) ([]string, error) {
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/avatars/", KeysOnly: true})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var ids []string
	for r := range res.Next() {
		if r.Error != nil {
			return nil, r.Error
		}
		ids = append(ids, r.Key[strings.LastIndexByte(r.Key, '/')+1:])
	}
	return ids, nil
}

// collectAvatars deletes the stored avatars that neither this node's
// profile nor a contact's refers to. The caller holds contactMu, so that
// no avatar is stored meanwhile without its record.
func (s *Service) collectAvatars(ctx context.Context) error {
	ids, err := s.storedAvatars(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	used := map[string]bool{}
	if own, err := s.Profile(ctx); err == nil {
		used[own.AvatarID] = true
	}
	contacts, err := s.Contacts(ctx, false)
	if err != nil {
		return err
	}
	for _, c := range contacts {
		if c.Profile != nil {
			used[c.Profile.AvatarID] = true
		}
	}
	for _, id := range ids {
		if !used[id] {
			if err := s.ds.Delete(ctx, avatarKey(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// collect runs collectAvatars under contactMu.
func (s *Service) collect(ctx context.Context) {
	s.contactMu.Lock()
	defer s.contactMu.Unlock()
	if err := s.collectAvatars(ctx); err != nil {
		s.log.Warn("collect avatars", "err", err)
	}
}

// heldAvatar is the avatar of a friend request that waits, in memory.
type heldAvatar struct {
	id string
	b  []byte
}

// holdAvatar keeps the avatar of p's waiting request in memory.
func (s *Service) holdAvatar(p peer.ID, b []byte) {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if len(b) == 0 {
		delete(s.pendingAvatars, p)
		return
	}
	s.pendingAvatars[p] = heldAvatar{transfer.HashOf(b).String(), b}
}

// takeAvatar returns and forgets the avatar held for p's request.
func (s *Service) takeAvatar(p peer.ID) []byte {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	held := s.pendingAvatars[p]
	delete(s.pendingAvatars, p)
	return held.b
}

// adoptAvatar stores the avatar held for a request that was accepted,
// in the update of its contact record.
func (s *Service) adoptAvatar(ctx context.Context, c *Contact) error {
	b := s.takeAvatar(c.PeerID)
	if len(b) == 0 || c.Profile == nil || c.Profile.AvatarID != transfer.HashOf(b).String() {
		return nil
	}
	_, err := s.storeAvatar(ctx, b)
	return err
}

// roomForRequest reports whether a new friend request from a stranger
// may wait for an answer: requests older than pendingRequestTTL are
// dropped first, then at most maxPending may wait.
func (s *Service) roomForRequest(ctx context.Context) (bool, error) {
	s.contactMu.Lock()
	defer s.contactMu.Unlock()
	now := s.cfg.Now()
	waiting := 0
	var expired []peer.ID
	err := history.QueryJSON(ctx, s.ds, query.Query{Prefix: "/contacts/"}, func(_ string, c *Contact) bool {
		if c.State != StatePendingIn {
			return true
		}
		asked := c.Asked
		if asked.IsZero() {
			asked = c.Since
		}
		if now.Sub(asked) > pendingRequestTTL {
			expired = append(expired, c.PeerID)
		} else {
			waiting++
		}
		return true
	})
	if err != nil {
		return false, err
	}
	for _, p := range expired {
		if err := s.ds.Delete(ctx, contactKey(p)); err != nil {
			return false, err
		}
		s.cacheMu.Lock()
		delete(s.contactCache, p)
		s.cacheMu.Unlock()
		s.takeAvatar(p)
	}
	return waiting < s.maxPending, nil
}

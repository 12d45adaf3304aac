package chat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/chat/pb"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/frame"
)

// Contact errors.
var (
	ErrNotContact   = errors.New("chat: no such contact")
	ErrNotFriend    = errors.New("chat: not a friend")
	ErrNoRequest    = errors.New("chat: no friend request from this peer")
	ErrSelf         = errors.New("chat: that is this node itself")
	ErrAlreadyAsked = errors.New("chat: already friends")
	ErrNoMessage    = history.ErrNoMessage
)

// errNoChange leaves a contact record as it is (from an update function).
var errNoChange = errors.New("chat: no change")

// contactTimeout bounds one contact-protocol exchange.
const contactTimeout = 20 * time.Second

// contact returns p's contact record, nil when there is none. It reads
// through a cache: every message sent or received looks its peer up.
func (s *Service) contact(ctx context.Context, p peer.ID) (*Contact, error) {
	c, err := s.cachedContact(ctx, p)
	if c == nil || err != nil {
		return nil, err
	}
	// A copy: callers change what they get.
	cp := *c
	cp.Addrs = slices.Clone(c.Addrs)
	return &cp, nil
}

// isFriend says whether p is a friend now, without copying its record
// (Send and every received round ask, and a copy was 2% of a DM's CPU).
func (s *Service) isFriend(ctx context.Context, p peer.ID) (bool, error) {
	c, err := s.cachedContact(ctx, p)
	return c != nil && c.State == StateFriend, err
}

// cachedContact is p's record as cached, nil if p is no contact: shared,
// so only to be read (an update caches a new record, never changes one).
func (s *Service) cachedContact(ctx context.Context, p peer.ID) (*Contact, error) {
	s.cacheMu.RLock()
	c, ok := s.contactCache[p]
	s.cacheMu.RUnlock()
	if !ok {
		var stored Contact
		err := history.GetJSON(ctx, s.ds, contactKey(p), &stored)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			c = nil
		case err != nil:
			return nil, err
		default:
			c = &stored
		}
		if c != nil {
			// Only records are cached: a miss for every stranger that
			// connects would grow the cache without bound.
			s.cacheMu.Lock()
			if cached, ok := s.contactCache[p]; ok {
				// An update stored meanwhile is newer than what was read.
				c = cached
			} else {
				s.contactCache[p] = c
			}
			s.cacheMu.Unlock()
		}
	}
	return c, nil
}

// updateContact applies fn to p's contact record (a new one if there is
// none) and stores it durably. fn returning an error leaves it unchanged.
func (s *Service) updateContact(ctx context.Context, p peer.ID, fn func(c *Contact) error) (*Contact, error) {
	c, err := s.storeContact(ctx, p, fn)
	if err != nil {
		return nil, err
	}
	// Synced outside the lock: couriers and senders need it meanwhile.
	return c, s.sync(ctx)
}

// storeContact is updateContact without the sync, for what may be lost
// in a crash (a last-seen time).
func (s *Service) storeContact(ctx context.Context, p peer.ID, fn func(c *Contact) error) (*Contact, error) {
	s.contactMu.Lock()
	defer s.contactMu.Unlock()
	c, err := s.contact(ctx, p)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = &Contact{PeerID: p, Since: s.cfg.Now()}
	}
	if err := fn(c); err != nil {
		return nil, err
	}
	if err := history.PutJSON(ctx, s.ds, contactKey(p), c); err != nil {
		s.cacheMu.Lock()
		delete(s.contactCache, p) // unknown now: read it again
		s.cacheMu.Unlock()
		return nil, err
	}
	stored := *c
	stored.Addrs = slices.Clone(c.Addrs)
	s.cacheMu.Lock()
	s.contactCache[p] = &stored
	s.cacheMu.Unlock()
	return c, nil
}

// Contacts lists contacts; pendingOnly lists only the friend requests
// waiting for this node's answer.
func (s *Service) Contacts(ctx context.Context, pendingOnly bool) ([]*Contact, error) {
	var out []*Contact
	err := history.QueryJSON(ctx, s.ds, query.Query{Prefix: "/contacts/"}, func(_ string, c *Contact) bool {
		if !pendingOnly || c.State == StatePendingIn {
			out = append(out, c)
		}
		return true
	})
	return out, err
}

// Contact is p's contact record; ErrNotContact when there is none.
func (s *Service) Contact(ctx context.Context, p peer.ID) (*Contact, error) {
	c, err := s.contact(ctx, p)
	if err == nil && c == nil {
		err = fmt.Errorf("%w: %s", ErrNotContact, p)
	}
	return c, err
}

// IsFriend says whether p is a friend now (from the contact cache).
func (s *Service) IsFriend(p peer.ID) bool {
	ok, err := s.isFriend(s.ctx, p)
	return err == nil && ok
}

// PeerName is the name p's profile shows, "" when p is no contact or has
// sent no profile.
func (s *Service) PeerName(ctx context.Context, p peer.ID) string {
	if c, err := s.contact(ctx, p); err == nil && c != nil && c.Profile != nil {
		return c.Profile.Name
	}
	return ""
}

// FriendAddrs reports whether p is a friend, with the addresses this node
// knows for p.
func (s *Service) FriendAddrs(ctx context.Context, p peer.ID) (addrs []string, friend bool, err error) {
	c, err := s.contact(ctx, p)
	if err != nil || c == nil || c.State != StateFriend {
		return nil, false, err
	}
	return c.Addrs, true, nil
}

// AddFriend asks info.ID to be friends. It returns once the request is
// stored; the request is delivered when the peer is reachable (its
// addresses from info, else the DHT), retried until it is.
func (s *Service) AddFriend(ctx context.Context, info peer.AddrInfo, message string) (*Contact, error) {
	if info.ID == s.h.ID() {
		return nil, ErrSelf
	}
	if len(message) > MaxStatusBytes || !utf8.ValidString(message) {
		return nil, fmt.Errorf("chat: %w request: the message must be UTF-8 of at most %d bytes", ErrInvalid, MaxStatusBytes)
	}
	c, err := s.updateContact(ctx, info.ID, func(c *Contact) error {
		switch c.State {
		case StateFriend:
			return ErrAlreadyAsked
		case StatePendingIn:
			// They asked first: adding them back accepts.
			c.State = StateFriend
			c.owe(oweAccept)
			if err := s.adoptAvatar(ctx, c); err != nil {
				return err
			}
		default:
			c.State = StatePendingOut
			c.owe(oweRequest)
		}
		c.Message = message
		for _, a := range info.Addrs {
			if s := a.String(); !slices.Contains(c.Addrs, s) {
				c.Addrs = append(c.Addrs, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(info.Addrs) > 0 {
		s.h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
	}
	s.keep(c)
	s.kickContact(info.ID)
	return c, nil
}

// Accept accepts p's friend request.
func (s *Service) Accept(ctx context.Context, p peer.ID) (*Contact, error) {
	c, err := s.updateContact(ctx, p, func(c *Contact) error {
		if c.State != StatePendingIn {
			return fmt.Errorf("%w %s", ErrNoRequest, p)
		}
		c.State = StateFriend
		c.owe(oweAccept)
		return s.adoptAvatar(ctx, c)
	})
	if err != nil {
		return nil, err
	}
	s.keep(c)
	s.kickContact(p)
	s.publish(EventFriendUpdate, ContactEvent{PeerID: p, State: c.State})
	return c, nil
}

// Decline declines p's friend request.
func (s *Service) Decline(ctx context.Context, p peer.ID) (*Contact, error) {
	c, err := s.updateContact(ctx, p, func(c *Contact) error {
		if c.State != StatePendingIn {
			return fmt.Errorf("%w %s", ErrNoRequest, p)
		}
		c.State = StateDeclined
		c.owe(oweDecline)
		s.takeAvatar(p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.kickContact(p)
	return c, nil
}

// Remove ends a friendship (or withdraws a request) on both sides.
func (s *Service) Remove(ctx context.Context, p peer.ID) (*Contact, error) {
	return s.endContact(ctx, p, StateRemoved)
}

// Block removes p as a friend on both sides and refuses everything p
// sends from now on, until p is added again.
func (s *Service) Block(ctx context.Context, p peer.ID) (*Contact, error) {
	if p == s.h.ID() {
		return nil, ErrSelf
	}
	return s.endContact(ctx, p, StateBlocked)
}

func (s *Service) endContact(ctx context.Context, p peer.ID, state string) (*Contact, error) {
	c, err := s.updateContact(ctx, p, func(c *Contact) error {
		if state == StateRemoved && c.State == "" {
			return fmt.Errorf("%w: %s", ErrNotContact, p)
		}
		// Whoever knew of us is told; whatever was owed before goes.
		notice := ""
		if c.State == StateFriend || c.State == StatePendingOut || c.State == StatePendingIn {
			notice = oweUnfriend
		}
		c.State = state
		c.owe(notice)
		s.takeAvatar(p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.Owe == oweUnfriend && s.connected(p) {
		// Told now: p's courier may be busy with a stream of messages
		// for a while. It stays the way for a peer that is not connected
		// (and for a retry); an unfriend told twice is no harm, and what
		// is sent is what the record owes then (a request made since
		// replaces the unfriend).
		s.run.Go(func() {
			if _, err := s.deliverContactOf(p); err != nil {
				s.log.Debug("unfriend not told yet", "peer", p, "err", err)
			}
		})
	}
	s.unkeep(p)
	s.kickContact(p)
	s.publish(EventFriendUpdate, ContactEvent{PeerID: p, State: c.State})
	return c, nil
}

// deliverContact sends what this node owes c, and its profile to a friend
// that has an older version. It reports whether anything is still owed.
func (s *Service) deliverContact(ctx context.Context, c *Contact) error {
	if c.Owe != "" {
		own, err := s.wireProfile(ctx)
		if err != nil {
			return err
		}
		req := &pb.ContactRequest{}
		switch c.Owe {
		case oweRequest:
			req.Body = &pb.ContactRequest_FriendRequest{FriendRequest: &pb.FriendRequest{Message: c.Message, Profile: own.toWire()}}
		case oweAccept:
			req.Body = &pb.ContactRequest_FriendResponse{FriendResponse: &pb.FriendResponse{Accept: true, Profile: own.toWire()}}
		case oweDecline:
			// A profile is for friends: a no carries none.
			req.Body = &pb.ContactRequest_FriendResponse{FriendResponse: &pb.FriendResponse{}}
		case oweUnfriend:
			req.Body = &pb.ContactRequest_Unfriend{Unfriend: &pb.Unfriend{}}
		}
		if err := s.contactRequest(ctx, c.PeerID, req); err != nil {
			return err
		}
		owed, n := c.Owe, c.OweN
		updated, err := s.updateContact(ctx, c.PeerID, func(c *Contact) error {
			if c.Owe == owed && c.OweN == n {
				c.owe("")
			}
			if owed == oweAccept {
				c.ProfileSent = own.Version // the answer carried it
			}
			return nil
		})
		if err != nil {
			return err
		}
		*c = *updated
	}
	if c.State != StateFriend {
		return nil
	}
	own, err := s.wireProfile(ctx)
	if err != nil {
		return err
	}
	if c.ProfileSent >= own.Version {
		return nil
	}
	req := &pb.ContactRequest{Body: &pb.ContactRequest_Profile{Profile: own.toWire()}}
	if err := s.contactRequest(ctx, c.PeerID, req); err != nil {
		return err
	}
	_, err = s.updateContact(ctx, c.PeerID, func(c *Contact) error {
		c.ProfileSent = max(c.ProfileSent, own.Version)
		return nil
	})
	return err
}

// contactRequest makes one contact-protocol exchange with p.
func (s *Service) contactRequest(ctx context.Context, p peer.ID, req *pb.ContactRequest) error {
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "chat"), contactTimeout)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ContactProtocol)
	if err != nil {
		return fmt.Errorf("chat: reach %s: %w", p, err)
	}
	defer st.Close()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	if err := writeFrame(st, req); err != nil {
		st.Reset()
		return fmt.Errorf("chat: contact %s: %w", p, err)
	}
	var reply pb.ContactReply
	if err := readFrame(bufio.NewReader(st), MaxContactFrame, &reply); err != nil {
		st.Reset()
		return fmt.Errorf("chat: contact %s: %w", p, err)
	}
	if reply.GetCode() != CodeOK {
		return fmt.Errorf("%w: %s (code %d)", ErrRefused, reply.GetMessage(), reply.GetCode())
	}
	return nil
}

// admit looks up the contact record of a stream's sender (nil: a
// stranger). A blocked peer's stream is reset, unanswered.
func (s *Service) admit(ctx context.Context, st network.Stream) (*Contact, bool) {
	c, err := s.contact(ctx, st.Conn().RemotePeer())
	if err != nil || (c != nil && c.State == StateBlocked) {
		st.Reset()
		return nil, false
	}
	return c, true
}

// handleContact answers one contact-protocol request.
func (s *Service) handleContact(st network.Stream) {
	defer st.Close()
	from := st.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(s.ctx, contactTimeout)
	defer cancel()
	st.SetDeadline(time.Now().Add(contactTimeout))
	c, ok := s.admit(ctx, st)
	if !ok {
		return
	}
	// A stranger sends at most a friend request, and the frame's memory
	// is reserved in the stream's scope before it is read.
	max := MaxContactFrame
	if c == nil || (c.State != StateFriend && c.State != StatePendingOut && c.State != StatePendingIn) {
		max = maxStrangerContactFrame
	}
	var req pb.ContactRequest
	if err := frame.ReadReservedAs(bufio.NewReader(st), max, &req, st.Scope(), ErrFrameTooLarge, ErrBadFrame); err != nil {
		s.log.Info("bad contact frame", "peer", from, "err", err)
		writeFrame(st, &pb.ContactReply{Code: CodeBadFrame, Message: err.Error()})
		return
	}
	code, msg := s.applyContact(ctx, from, c, &req)
	writeFrame(st, &pb.ContactReply{Code: code, Message: msg})
}

// applyContact applies one contact request and answers with a reply code
// and message.
func (s *Service) applyContact(ctx context.Context, from peer.ID, c *Contact, req *pb.ContactRequest) (uint32, string) {
	state := ""
	if c != nil {
		state = c.State
	}
	var err error
	switch body := req.Body.(type) {
	case *pb.ContactRequest_FriendRequest:
		err = s.applyFriendRequest(ctx, from, state, body.FriendRequest)
	case *pb.ContactRequest_FriendResponse:
		err = s.applyFriendResponse(ctx, from, body.FriendResponse)
	case *pb.ContactRequest_Unfriend:
		err = s.applyUnfriend(ctx, from)
	case *pb.ContactRequest_Profile:
		err = s.applyProfile(ctx, from, state, body.Profile)
	default:
		return CodeBadFrame, "unknown request"
	}
	var r *contactReply
	switch {
	case err == nil, errors.Is(err, errNoChange):
		return CodeOK, ""
	case errors.As(err, &r):
		return r.code, r.msg
	case errors.Is(err, ErrBadFrame):
		return CodeBadFrame, err.Error()
	}
	s.log.Error("contact request", "peer", from, "err", err)
	return CodeInternal, "internal error"
}

// contactReply is a refusal of a contact request with its code and the
// message the requester sees.
type contactReply struct {
	code uint32
	msg  string
}

func (r *contactReply) Error() string { return r.msg }

// applyFriendRequest takes a friend request: a new one waits for an
// answer; from a friend, or from whom this node asked, it is a yes.
func (s *Service) applyFriendRequest(ctx context.Context, from peer.ID, state string, req *pb.FriendRequest) error {
	// A stranger's standing and rate first: nothing of its request is
	// kept before they are checked.
	stranger := state != StateFriend && state != StatePendingOut
	if stranger && !s.allowStranger(from) {
		return &contactReply{CodeRateLimited, "too many friend requests; try again later"}
	}
	if stranger && state != StatePendingIn {
		if ok, err := s.roomForRequest(ctx); err != nil {
			return err
		} else if !ok {
			return &contactReply{CodeRateLimited, "too many friend requests wait for an answer; try again later"}
		}
	}
	prof, err := profileFromWire(req.GetProfile())
	if err != nil {
		return err
	}
	text := req.GetMessage()
	if len(text) > MaxStatusBytes || !utf8.ValidString(text) {
		return &contactReply{CodeBadFrame, "request message too long or not UTF-8"}
	}
	var avatar []byte
	if prof != nil {
		avatar, prof.Avatar = prof.Avatar, nil
	}
	updated, err := s.updateContact(ctx, from, func(c *Contact) error {
		switch c.State {
		case StateFriend:
			// They lost our friendship (a reinstall?): confirm it.
			c.owe(oweAccept)
		case StatePendingOut:
			// Both asked: that is a yes from both.
			c.State = StateFriend
			c.owe(oweAccept)
		default:
			c.State, c.Message, c.Asked = StatePendingIn, text, s.cfg.Now()
		}
		if prof != nil {
			c.Profile = prof
		}
		if c.State == StatePendingIn {
			s.holdAvatar(from, avatar) // stored once accepted
			return nil
		}
		return s.keepAvatar(ctx, avatar)
	})
	if err != nil {
		return err
	}
	if updated.State == StatePendingIn {
		s.publish(EventFriendRequest, ContactEvent{PeerID: from, Name: profileName(prof), Message: text})
	} else {
		s.keep(updated)
		s.kickContact(from)
		s.publish(EventFriendUpdate, ContactEvent{PeerID: from, State: updated.State})
	}
	return nil
}

// applyFriendResponse takes the answer to this node's request.
func (s *Service) applyFriendResponse(ctx context.Context, from peer.ID, resp *pb.FriendResponse) error {
	prof, err := profileFromWire(resp.GetProfile())
	if err != nil {
		return err
	}
	var avatar []byte
	if prof != nil {
		avatar, prof.Avatar = prof.Avatar, nil
	}
	updated, err := s.updateContact(ctx, from, func(c *Contact) error {
		if c.State != StatePendingOut {
			return errNoChange // nothing asked, nothing to answer (or keep)
		}
		c.State = StateDeclined
		if resp.GetAccept() {
			c.State = StateFriend
		}
		// Asked is their request's: a request of theirs from before
		// (a friendship since ended) must not make my declined request
		// look like one I declined.
		c.Asked = time.Time{}
		if c.Owe == oweRequest {
			c.Owe = ""
		}
		if prof != nil {
			c.Profile = prof
		}
		return s.keepAvatar(ctx, avatar)
	})
	if err != nil {
		return err
	}
	if updated.State == StateFriend {
		s.keep(updated)
		s.kickContact(from)
	} else {
		s.unkeep(from)
	}
	s.publish(EventFriendUpdate, ContactEvent{PeerID: from, State: updated.State})
	return nil
}

// applyUnfriend ends a friendship, or a request either way, on their word.
func (s *Service) applyUnfriend(ctx context.Context, from peer.ID) error {
	_, err := s.updateContact(ctx, from, func(c *Contact) error {
		if c.State != StateFriend && c.State != StatePendingOut && c.State != StatePendingIn {
			return errNoChange
		}
		c.State, c.Owe = StateRemoved, ""
		return nil
	})
	if err != nil {
		return err
	}
	s.unkeep(from)
	s.publish(EventFriendUpdate, ContactEvent{PeerID: from, State: StateRemoved})
	return nil
}

// applyProfile takes a friend's newer profile.
func (s *Service) applyProfile(ctx context.Context, from peer.ID, state string, w *pb.Profile) error {
	if state != StateFriend {
		return &contactReply{CodeNotFriends, "profiles are for friends"}
	}
	prof, err := profileFromWire(w)
	if err != nil || prof == nil {
		return &contactReply{CodeBadFrame, "bad profile"}
	}
	avatar := prof.Avatar
	prof.Avatar = nil
	var changed bool
	if _, err := s.updateContact(ctx, from, func(c *Contact) error {
		// The same version again stores an avatar that is missing (one
		// that waited in memory with a request, lost in a restart).
		missing := c.Profile != nil && prof.Version == c.Profile.Version && prof.AvatarID != "" && !s.hasAvatar(ctx, prof.AvatarID)
		if c.Profile != nil && prof.Version <= c.Profile.Version && !missing {
			return errNoChange
		}
		c.Profile, changed = prof, true
		return s.keepAvatar(ctx, avatar)
	}); err != nil && !errors.Is(err, errNoChange) {
		return err
	}
	if changed {
		s.collect(ctx)
		s.publish(EventProfile, ContactEvent{PeerID: from, Name: prof.Name, Version: prof.Version})
	}
	return nil
}

func profileName(p *Profile) string {
	if p == nil {
		return ""
	}
	return p.Name
}

// maxTrackedStrangers bounds the per-peer request limiters kept.
const maxTrackedStrangers = 4096

// allowStranger rate-limits friend requests from peers that are not
// friends: a few per peer, and a bound for all of them together.
func (s *Service) allowStranger(p peer.ID) bool {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	l, ok := s.perPeerReq[p]
	if !ok {
		if len(s.perPeerReq) >= maxTrackedStrangers {
			// Many strangers: start over rather than grow without bound;
			// the limit for all of them together still holds.
			clear(s.perPeerReq)
		}
		l = rate.NewLimiter(rate.Every(time.Minute), 3)
		s.perPeerReq[p] = l
	}
	return l.Allow() && s.strangers.Allow()
}

// Profile returns this node's own profile (version 0 when never set).
func (s *Service) Profile(ctx context.Context) (*Profile, error) {
	p := s.profile.Load()
	if p == nil {
		s.profileMu.Lock()
		defer s.profileMu.Unlock()
		if p = s.profile.Load(); p == nil {
			p = new(Profile)
			if err := history.GetJSON(ctx, s.ds, keyProfile, p); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				return nil, err
			}
			s.profile.Store(p)
		}
	}
	cp := *p // the kept one is never changed
	return &cp, nil
}

// ProfileUpdate says what SetProfile changes; nil fields stay.
type ProfileUpdate struct {
	Name   *string
	Status *string
	// Avatar is an image file (PNG, JPEG or GIF, up to 5 MiB); it is
	// cropped to a square and scaled to 256 pixels.
	Avatar []byte
}

// SetProfile changes this node's profile, bumps its version and sends it
// to every friend (now to those online, on reconnect to the others).
func (s *Service) SetProfile(ctx context.Context, u ProfileUpdate) (*Profile, error) {
	p, err := s.Profile(ctx)
	if err != nil {
		return nil, err
	}
	before := *p
	if u.Name != nil {
		if len(*u.Name) > MaxNameBytes || !utf8.ValidString(*u.Name) {
			return nil, fmt.Errorf("chat: %w profile: a name is UTF-8 of at most %d bytes", ErrInvalid, MaxNameBytes)
		}
		p.Name = *u.Name
	}
	if u.Status != nil {
		if len(*u.Status) > MaxStatusBytes || !utf8.ValidString(*u.Status) {
			return nil, fmt.Errorf("chat: %w profile: a status is UTF-8 of at most %d bytes", ErrInvalid, MaxStatusBytes)
		}
		p.Status = *u.Status
	}
	if u.Avatar != nil {
		if p.Avatar, p.AvatarType, err = MakeAvatar(u.Avatar); err != nil {
			return nil, fmt.Errorf("chat: avatar: %w", err)
		}
	}
	if p.Name == before.Name && p.Status == before.Status && bytes.Equal(p.Avatar, before.Avatar) {
		return p, nil // nothing changed: no new version for friends to fetch
	}
	p.Version++
	if err := s.putProfile(ctx, p); err != nil {
		return nil, err
	}
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	contacts, err := s.Contacts(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, c := range contacts {
		if c.State == StateFriend {
			s.kickContact(c.PeerID)
		}
	}
	return p, nil
}

// keepAvatar stores the avatar of a profile kept (none: nothing to do).
// The caller holds contactMu: collectAvatars does not see it before its
// record.
func (s *Service) keepAvatar(ctx context.Context, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := s.storeAvatar(ctx, b)
	return err
}

// putProfile stores this node's own profile with its avatar, and deletes
// the avatar it replaces.
func (s *Service) putProfile(ctx context.Context, p *Profile) error {
	s.contactMu.Lock()
	defer s.contactMu.Unlock()
	if len(p.Avatar) > 0 {
		id, err := s.storeAvatar(ctx, p.Avatar)
		if err != nil {
			return err
		}
		p.AvatarID = id
	}
	s.profileMu.Lock()
	err := history.PutJSON(ctx, s.ds, keyProfile, p)
	if err == nil {
		stored := *p
		stored.Avatar = nil // not stored: json:"-"
		s.profile.Store(&stored)
	}
	s.profileMu.Unlock()
	if err != nil {
		return err
	}
	return s.collectAvatars(ctx)
}

// wireProfile is this node's profile with its avatar's bytes, to send.
func (s *Service) wireProfile(ctx context.Context) (*Profile, error) {
	p, err := s.Profile(ctx)
	if err != nil || p.AvatarID == "" {
		return p, err
	}
	if p.Avatar, err = s.avatar(ctx, p.AvatarID); err != nil {
		// Lost from the store: send the profile without it.
		s.log.Warn("own avatar", "err", err)
		p.AvatarID, p.AvatarType = "", ""
	}
	return p, nil
}

// Avatar returns the avatar id (of this node's profile or a contact's)
// and its MIME type.
func (s *Service) Avatar(ctx context.Context, id string) ([]byte, string, error) {
	typ := ""
	if own, err := s.Profile(ctx); err == nil && own.AvatarID == id {
		typ = own.AvatarType
	} else {
		contacts, err := s.Contacts(ctx, false)
		if err != nil {
			return nil, "", err
		}
		for _, c := range contacts {
			if c.Profile != nil && c.Profile.AvatarID == id {
				typ = c.Profile.AvatarType
			}
		}
	}
	if typ == "" {
		return nil, "", fmt.Errorf("%w: no avatar %q", ErrNotContact, id)
	}
	b, err := s.avatar(ctx, id)
	return b, typ, err
}

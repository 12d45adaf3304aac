package group

// The group wire protocols.
//
// # /meshtalk/group/<group-id> — the gossipsub topic of a group
//
// Every member subscribes to its group's topic. A topic message
// (pb.TopicMessage) is either an Envelope (a group message) or a SignedOp
// (a membership operation). Gossipsub's own signing is off
// (StrictNoSign): the author signs inside the payload, and the topic
// validator checks that signature once, decrypts, and hands the result on
// with the message, so nothing is verified twice.
//
//	Envelope   group_id, author, seq, epoch, nonce,
//	           ciphertext = XChaCha20-Poly1305(key[epoch], nonce, Message,
//	                        ad = "meshtalk group envelope v1"|group_id|author|seq|epoch),
//	           key_hint   = the first 8 bytes of key[epoch]'s key hash (below),
//	           signature  = Ed25519(author, the same ad|nonce|ciphertext|key_hint)
//
// The key hint (groupsync 2.0.0; absent in older envelopes, and then not
// signed) says which key of the epoch's number the envelope needs: two
// branches of the op DAG may each have started an epoch of one number,
// with keys of their own, and a member that has not yet heard of the
// other branch must not take a message sealed on it for junk.
//
// where Message is history/pb's Message, as in a direct message.
//
// The validator answers, as gossipsub expects:
//
//	Reject  a malformed message (a message ID not derived as below
//	        included); a bad signature; an author that is not a
//	        current member nor a former one within its frozen head
//	        (below); an envelope whose key hint names this node's key of
//	        its epoch (or that has none) but that does not open with it;
//	        an operation whose signer may not do it
//	Ignore  a group or epoch this node does not know (yet); a duplicate;
//	        an operation that follows operations this node does not hold
//	        (it pulls them); an envelope whose key hint names another key
//	        of its epoch's number than this node's (sealed on a branch it
//	        has not heard of, or knows of: it pulls), by a member or one
//	        that this node's branch removed; one without a hint
//	        that does not open with this node's key of an epoch that two
//	        branches numbered alike
//	Accept  everything else
//
// Only members are admitted to a topic (filter.go): gossipsub's peer
// filter keeps every other peer out of the mesh, the gossip and the
// answers to IWANT; subscriptions of removed or departed members are
// dropped; floodsub, whose peers get every message, is not spoken.
//
// Gossipsub scores its peers (score.go): a peer that sends or
// forwards rejected messages soon goes below the graylist threshold,
// and then everything it sends is dropped unread.
//
// A member numbers its own messages 1, 2, 3, ... per group (seq), so that
// any member can say what it holds as, per author, "everything up to n,
// and these above". Publishing is paced (Config.Rate) and the
// per-peer queues are large; whatever gossip still loses, catch-up fills.
//
// A group message's ID (Message id, inside the ciphertext) is derived,
// never chosen: a ULID (26 characters of Crockford base32) whose 48-bit
// time is the message's sent_at_ms and whose other 80 bits are the first
// 10 bytes of
//
//	SHA-256("meshtalk group message id v1" | group_id | author | seq)
//
// where each field is preceded by its length as a uvarint, author is the
// peer ID's bytes and seq is 8 bytes big-endian. Every member recomputes
// it from the envelope (whose group_id, author and seq the author signed)
// and the decrypted message, and treats a message whose ID differs as
// malformed: the validator rejects it, and a pull or a mailbox refuses it
// like any bad envelope. Two messages with different (author, seq) so
// never share an ID, and no member can take the ID of another's message
// (nor can a friend with a direct message, whose IDs hash another
// domain, see wire.go).
//
// # Membership: a DAG of signed operations
//
// A group is the set of its operations (pb.Op), each signed by its actor
// and naming as parents the SHA-256 of each signed op at the heads of
// the DAG its actor held (1 to 16, ascending; 1.x ops named the one op
// before them, prev, at an index, and are read so). The set is folded in
// one order that every member computes alike (doc.go):
//
//	create            the creator (an admin), the name, epoch 0 and the hash of its key;
//	                  the group ID is the first 16 bytes of SHA-256(the encoded create op), in hex
//	add      target   by an admin, or by any member with an admin's valid invite that
//	                  no revoke names, for a target that was not removed (a removed
//	                  member comes back only by an admin's add without invite);
//	                  starts epoch+1 when it carries a key_hash (1.1.0 adds always do:
//	                  the newcomer gets only the new key, so reads nothing sent before)
//	remove   target   by an admin; starts epoch+1 (key_hash of its new key); last_seq
//	                  freezes the target's head (below)
//	leave             by the member itself; last_seq freezes its head
//	revoke            by an admin: invite_id, an invite no add may use from then on
//	rekey             by an admin, or by any member while someone who left still
//	                  holds the current key; starts epoch+1 (after a leave: the
//	                  first admin at once, then, if it is away, the other
//	                  admins and members in turn, 2 s apart, until one does)
//	promote  target   by an admin: the target becomes an admin
//	rename            by an admin: name and avatar
//
// An op that starts an epoch names the number after its actor's epoch;
// the fold numbers epochs itself (two branches may name one number), and
// the number named stays the one the key hash binds and a key travels
// with. An op its actor may not do at its place in the order is void:
// kept and synced, without effect.
//
// Each operation carries its actor's time. Times never go back along the
// DAG: an operation counts as no earlier than the ones it follows (so an
// add dated back cannot use an invite that has expired since), and its
// actor dates it no earlier than those whatever its own clock says. One
// dated more than an hour ahead of a member's clock waits (the validator
// ignores it) until that clock is near enough. And an add by an invite
// that has expired by the member's clock, dated more than an hour before
// that clock, is not taken while it is the latest op the member hears of
// (no op since the expiry would otherwise stop a backdated add): it
// counts once later ops follow it, appended by members who took it.
//
// A frozen head: a remove or leave op carries last_seq, the highest seq
// of the member who goes that the remover holds (the leaver: it sent).
// The member keeps the keys of its epochs, but an envelope of a former
// member counts, by whatever path it comes (gossip, pull, mailbox), only
// if it is numbered no later than that: a removed member cannot go on
// writing with an old key. And no member seals with the key of an epoch
// while someone who held it has left: it waits for the rekey that
// follows a leave (sending waits for it, bounded).
//
// Every member checks every operation against the ops it follows (the
// group as its actor held it) before it takes it, and refuses one that
// fails there; an operation whose parents it does not hold yet makes it
// pull them. Two admins who act at once, apart or not, fork the DAG; the
// order folds both branches alike at every member (doc.go), and the next
// op of any member follows both.
//
// A new epoch's key goes to each remaining member over
// /meshtalk/groupsync/2.0.0 (below): the secure channel authenticates and
// encrypts both ends, so the key needs no sealing of its own; a member
// checks it against the key_hash of the signed operation that started the
// epoch. A member that was offline gets it from any member when it pulls.
// An admin that holds no key of an epoch another member started 15 s
// before starts the next epoch itself (the admins in turn, 2 s apart): a
// member that keeps a new key to itself cannot silence the group.
//
// # Invites
//
// An invite (pb.Invite) is signed by an admin: group ID, a random invite
// ID, a number of uses (0: any) and an expiry. The invite code (pb.
// InviteCode, base64url after the prefix "mtg1") adds the group's name and
// the members' addresses, unsigned hints. Any member admits the holder: it
// checks the invite against the log (the signer is an admin, not expired
// by the member's clock, fewer adds cite it than its uses), appends an add
// operation that carries the invite, and answers the log, the current key
// and what it holds.
//
// # /meshtalk/groupsync/2.0.0 — joining, catch-up, new keys
//
// One SyncRequest per stream; the other side answers SyncFrames until one
// with end set:
//
//	requester                          responder
//	SyncRequest{pull: group, op_heads, heads} -->
//	                                   <-- SyncFrame{ops, keys, envelopes}
//	                                   <-- SyncFrame{envelopes} ...
//	                                   <-- SyncFrame{end}
//
//	request  meaning
//	pull     "I hold the ops of these DAG heads and, per author, these
//	         seqs": the responder (if the requester is a member) answers
//	         the ops that are not ancestors of those heads, in its order
//	         (parents first), the keys of the epochs the requester was in
//	         and the envelopes it lacks, in order; a head the responder
//	         does not hold makes it pull from the requester in turn
//	join     "admit me": an invite; the answer is the ops, the key, the
//	         responder's heads (the newcomer starts there), for each the
//	         envelope it ends on, and members. The newcomer takes a head
//	         only with that envelope, signed by its author: a head past
//	         what the author sent would drop its next messages as held
//	push     a member hands ops and keys (a new epoch, or a friend added
//	         directly); the answer is one frame with end and a code
//	forward  a member hands topic messages it published to a member it
//	         reaches only through a relay: gossipsub opens no stream on
//	         such a limited connection (forward.go). The receiver checks
//	         each with the topic validator and takes it as gossip's; a
//	         rejected one refuses the rest (CodeBadFrame). The answer is
//	         one frame with end and a code. A member that predates it
//	         refuses it as an unknown request, and gets the messages by
//	         the refresh pull, as before.
//
// A pull happens when a member connects, when a message shows a gap in an
// author's numbering, and a moment after the last message of a burst (to
// catch a lost tail). Whatever arrives twice, by gossip or by pull, is
// stored once: dedup is by (author, seq). Envelopes that come by pull (or
// from a relay mailbox) are checked as the validator checks them, the
// message ID included; one that fails is dropped.
//
// A code other than 0 in a frame refuses the request (CodeNotMember,
// CodeInviteExpired, CodeInviteUsedUp, CodeBadInvite, CodeInviteRevoked,
// CodeRemoved, CodeBadFrame).
//
// A pull serves a member the envelopes of the epochs it was in only (and
// the keys of those): since an add starts an epoch, a newcomer is served
// nothing sent before its add. (History for newcomers, if wanted, would
// be a group setting, off by default; there is none yet.)
//
// A key (EpochKey) travels with the epoch number its op named; the
// receiver keeps it if its hash is one an op it holds names.
//
// # Versions
//
//	1.0.0  the protocols above, without what 1.1.0 added.
//	1.1.0  ops: last_seq (frozen heads) on remove and leave, the revoke
//	       op with invite_id, adds that start an epoch; refusal codes 14
//	       and 15. A 1.0.0 member refuses these ops, so every member of a
//	       group must run 1.1.0: the new protocol ID keeps the versions
//	       from syncing with each other at all, rather than half.
//	2.0.0  ops name parents (the DAG) instead of index and prev; pull
//	       names op_heads instead of a count of ops; keys travel with the
//	       number their op named. A 2.0.0 member reads ops in 1.x form
//	       (stored logs, schema 2, migrate); a 1.1.0 member refuses ops
//	       with parents, so again every member of a group must run
//	       2.0.0.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/transfer"
)

// SyncProtocol is the catch-up, join and key protocol.
const SyncProtocol = protocol.ID("/meshtalk/groupsync/2.0.0")

// Topic is the gossipsub topic of group id.
func Topic(id string) string { return topicPrefix + id }

// Limits of the group protocols.
const (
	// MaxTopicMessage bounds one topic message (gossipsub's own limit is
	// 1 MiB).
	MaxTopicMessage = 512 << 10
	// MaxSyncFrame bounds one groupsync frame.
	MaxSyncFrame = 4 << 20
	// maxSyncBatch bounds the envelopes of one frame; maxSyncBytes their
	// bytes.
	maxSyncBatch = 256
	maxSyncBytes = 2 << 20
	// MaxInviteCode bounds an invite code's text.
	MaxInviteCode = 16 << 10
	// maxHints bounds the members an invite code names.
	maxHints = 16
	// maxAddrs bounds the addresses of one member.
	maxAddrs = 16
	// maxParents bounds the parents of an op: the heads its actor holds.
	maxParents = 16
	// maxExtra bounds the seqs above the contiguous run a head lists.
	maxExtra = 4096
	// MaxNameBytes bounds a group's name.
	MaxNameBytes = 128
	// MaxAvatarBytes bounds a group's avatar (a 256-pixel JPEG).
	MaxAvatarBytes = history.MaxAvatarBytes
	// groupIDLen is the length of a group ID in bytes (hex: twice that).
	groupIDLen = 16
	// inviteIDLen is the length of an invite's random ID.
	inviteIDLen = 16
	keyLen      = chacha20poly1305.KeySize
)

// Codes of groupsync refusals, stable across versions (0 to 4 are those
// of the chat protocols, with the same meanings).
const (
	CodeOK            = 0
	CodeNotFriends    = 1
	CodeBadFrame      = 3
	CodeInternal      = 4
	CodeNotMember     = 10
	CodeInviteExpired = 11
	CodeInviteUsedUp  = 12
	CodeBadInvite     = 13
	CodeInviteRevoked = 14
	CodeRemoved       = 15
)

// Errors of groups.
var (
	ErrClosed        = errors.New("group: closed")
	ErrFrameTooLarge = errors.New("group: frame too large")
	ErrBadFrame      = errors.New("group: malformed frame")
	// ErrRefused is wrapped when the other side refused a request.
	ErrRefused = errors.New("group: refused by peer")
	// ErrNotFriend: only a friend can be added to a group directly.
	ErrNotFriend = errors.New("group: not a friend")
	// ErrInvalid is wrapped by errors about what a user asked for
	// (history's, as for direct messages).
	ErrInvalid       = history.ErrInvalid
	ErrNoGroup       = errors.New("group: no such group")
	ErrNotMember     = errors.New("group: not a member of the group")
	ErrNotAdmin      = errors.New("group: only an admin of the group may do that")
	ErrInviteExpired = errors.New("group: the invite has expired: ask a group admin for a new one")
	ErrInviteUsedUp  = errors.New("group: the invite is used up: ask a group admin for a new one")
	ErrBadInvite     = errors.New("group: not a valid invite code")
	ErrInviteRevoked = errors.New("group: an admin revoked the invite: ask a group admin for a new one")
	// ErrRemoved: a member removed comes back only by an admin's explicit
	// add, not with an invite.
	ErrRemoved      = errors.New("group: you were removed from the group: only an admin can add you back")
	ErrUnreachable  = errors.New("group: no member of the group could be reached")
	errBadSignature = errors.New("group: bad signature")
)

// Operation kinds.
const (
	OpCreate  = "create"
	OpAdd     = "add"
	OpRemove  = "remove"
	OpLeave   = "leave"
	OpRekey   = "rekey"
	OpPromote = "promote"
	OpRename  = "rename"
	OpRevoke  = "revoke"
)

// Signing domains: a signature for one purpose is never valid for another.
const (
	domainEnvelope = "meshtalk group envelope v1"
	domainOp       = "meshtalk group op v1"
	domainInvite   = "meshtalk group invite v1"
	domainKey      = "meshtalk group key v1"
	inviteCodeTag  = "mtg1"
)

// envelope is a group message as it travels.
type envelope struct {
	GroupID    []byte
	Author     peer.ID
	Seq        uint64
	Epoch      uint64
	Nonce      []byte
	Ciphertext []byte
	Signature  []byte
	// KeyHint: the first keyHintLen bytes of the key hash of the key it
	// is sealed with (none in envelopes sealed before groupsync 2.0.0).
	KeyHint []byte
}

// keyHintLen is the length of an envelope's key hint.
const keyHintLen = 8

// keyHint is the key hint of an envelope sealed with key in a group's
// epoch.
func keyHint(gid []byte, epoch uint64, key []byte) []byte {
	return keyHash(gid, epoch, key)[:keyHintLen]
}

// foreignKey reports whether the envelope names, by its hint, another key
// of its epoch's number than key: it was sealed on a branch of the op DAG
// that numbered an epoch like this node's. An envelope without a hint
// names none.
func (e *envelope) foreignKey(key []byte) bool {
	return len(e.KeyHint) > 0 && !bytes.Equal(e.KeyHint, keyHint(e.GroupID, e.Epoch, key))
}

func (e *envelope) toWire() *pb.Envelope {
	return &pb.Envelope{GroupId: e.GroupID, Author: []byte(e.Author), Seq: e.Seq, Epoch: e.Epoch, Nonce: e.Nonce,
		Ciphertext: e.Ciphertext, Signature: e.Signature, KeyHint: e.KeyHint}
}

// envelopeFromWire checks the form of an envelope (not its signature).
func envelopeFromWire(w *pb.Envelope) (*envelope, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: no envelope", ErrBadFrame)
	}
	author, err := peer.IDFromBytes(w.GetAuthor())
	if err != nil {
		return nil, fmt.Errorf("%w: author: %v", ErrBadFrame, err)
	}
	e := &envelope{GroupID: w.GetGroupId(), Author: author, Seq: w.GetSeq(), Epoch: w.GetEpoch(), Nonce: w.GetNonce(),
		Ciphertext: w.GetCiphertext(), Signature: w.GetSignature(), KeyHint: w.GetKeyHint()}
	if len(e.GroupID) != groupIDLen || e.Seq == 0 || len(e.Nonce) != chacha20poly1305.NonceSizeX ||
		len(e.Ciphertext) < chacha20poly1305.Overhead || len(e.Signature) == 0 || len(e.Signature) > 128 ||
		(len(e.KeyHint) != 0 && len(e.KeyHint) != keyHintLen) {
		return nil, fmt.Errorf("%w: envelope fields", ErrBadFrame)
	}
	return e, nil
}

// ad is what the AEAD authenticates beside the plaintext.
func (e *envelope) ad() []byte {
	b := make([]byte, 0, 128)
	b = appendField(b, []byte(domainEnvelope))
	b = appendField(b, e.GroupID)
	b = appendField(b, []byte(e.Author))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	return binary.BigEndian.AppendUint64(b, e.Epoch)
}

// signed is what the author signs: the key hint only when there is one,
// so that envelopes sealed before there were hints still verify.
func (e *envelope) signed() []byte {
	b := appendField(e.ad(), e.Nonce)
	b = appendField(b, e.Ciphertext)
	if len(e.KeyHint) > 0 {
		b = appendField(b, e.KeyHint)
	}
	return b
}

func appendField(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// sealEnvelope encrypts m with key and signs the result with priv.
func sealEnvelope(priv crypto.PrivKey, author peer.ID, gid []byte, seq, epoch uint64, key []byte, m *historypb.Message) (*envelope, error) {
	plain, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	e := &envelope{GroupID: gid, Author: author, Seq: seq, Epoch: epoch, Nonce: make([]byte, chacha20poly1305.NonceSizeX),
		KeyHint: keyHint(gid, epoch, key)}
	rand.Read(e.Nonce)
	e.Ciphertext = aead.Seal(nil, e.Nonce, plain, e.ad())
	if e.Signature, err = priv.Sign(e.signed()); err != nil {
		return nil, err
	}
	return e, nil
}

// verify checks the author's signature.
func (e *envelope) verify() error {
	ok, err := verifySig(e.Author, e.signed(), e.Signature)
	if err != nil {
		return fmt.Errorf("%w: author key: %v", ErrBadFrame, err)
	}
	if !ok {
		return errBadSignature
	}
	return nil
}

// stdlibRules makes curve25519-voi accept exactly the signatures that
// crypto/ed25519 (and so libp2p) accepts: every member must agree on what
// is valid.
var stdlibRules = &voied25519.Options{Verify: voied25519.VerifyOptionsStdLib}

// verifySig reports whether sig is p's signature of msg. An Ed25519 key,
// every meshtalk identity's, is checked by curve25519-voi, in half the
// time crypto/ed25519 takes: each member checks every group message, and
// those checks were the largest part of a busy group's CPU.
func verifySig(p peer.ID, msg, sig []byte) (bool, error) {
	if k, ok := expandedKeys.Load(p); ok {
		return voied25519.VerifyExpandedWithOptions(k.(*voied25519.ExpandedPublicKey), msg, sig, stdlibRules), nil
	}
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return false, err
	}
	if pub.Type() == crypto.Ed25519 {
		raw, err := pub.Raw()
		if err != nil || len(raw) != voied25519.PublicKeySize {
			return false, fmt.Errorf("an Ed25519 key of %d bytes", len(raw))
		}
		k, err := voied25519.NewExpandedPublicKey(raw)
		if err != nil {
			return false, nil // no point on the curve: no signature verifies
		}
		if expandedCount.Add(1) > maxExpandedKeys {
			expandedKeys.Clear()
			expandedCount.Store(1)
		}
		expandedKeys.Store(p, k)
		return voied25519.VerifyExpandedWithOptions(k, msg, sig, stdlibRules), nil
	}
	return pub.Verify(msg, sig)
}

// expandedKeys are the authors' Ed25519 keys unpacked for verifying
// (1.5 KiB each; verifying with one takes a sixth less time, and every
// message of a group is verified at every member). Cleared when full.
var (
	expandedKeys  sync.Map // peer.ID -> *voied25519.ExpandedPublicKey
	expandedCount atomic.Int64
)

const maxExpandedKeys = 4096

// open decrypts and checks the message inside, its ID included: the one
// that the envelope's group, author and seq (signed) and the message's
// sent-at time make.
func (e *envelope) open(key []byte) (history.Wire, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return history.Wire{}, err
	}
	plain, err := aead.Open(nil, e.Nonce, e.Ciphertext, e.ad())
	if err != nil {
		return history.Wire{}, fmt.Errorf("%w: does not decrypt", ErrBadFrame)
	}
	var pm historypb.Message
	if err := proto.Unmarshal(plain, &pm); err != nil {
		return history.Wire{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	m, err := messageFromWire(&pm)
	switch {
	case err != nil:
	case m.Kind == history.KindDelivered:
		err = fmt.Errorf("%w: delivery receipts are not group messages", ErrBadFrame)
	default:
		if err = history.CheckID(m.ID, history.GroupMessageID(e.GroupID, e.Author, e.Seq, m.SentAtMS), m.SentAtMS, "its group, author, seq and sent_at_ms"); err != nil {
			err = fmt.Errorf("%w: %v", ErrBadFrame, err)
		}
	}
	return m, err
}

// op is one membership operation, verified.
type op struct {
	GroupID    []byte // empty in a create op: the ID derives from it
	Index      uint64
	Prev       []byte
	Actor      peer.ID
	Kind       string
	Target     peer.ID
	Addrs      []string
	Name       string
	Avatar     []byte
	AvatarType string
	Epoch      uint64
	KeyHash    []byte
	Invite     *invite
	TimeMS     int64
	Nonce      []byte
	// LastSeq is the frozen head of the member who goes (remove, leave).
	LastSeq uint64
	// InviteID is the invite withdrawn (revoke).
	InviteID []byte
	// Parents are the heads of the op DAG its actor held (2.0.0), in
	// ascending order; an op in 1.x form has none, and Prev is its one
	// parent (parentHashes).
	Parents [][]byte

	// raw is the encoded SignedOp, hash its SHA-256 (the next op's prev).
	raw  []byte
	hash [32]byte
}

func (o *op) toWire() *pb.Op {
	w := &pb.Op{GroupId: o.GroupID, Index: o.Index, Prev: o.Prev, Actor: []byte(o.Actor), Kind: o.Kind, Addrs: o.Addrs,
		Name: o.Name, Avatar: o.Avatar, AvatarType: o.AvatarType, Epoch: o.Epoch, KeyHash: o.KeyHash, TimeMs: o.TimeMS, Nonce: o.Nonce,
		LastSeq: o.LastSeq, InviteId: o.InviteID, Parents: o.Parents}
	if o.Target != "" {
		w.Target = []byte(o.Target)
	}
	if o.Invite != nil {
		w.Invite = o.Invite.toWire()
	}
	return w
}

// signOp signs o with priv (o.Actor's key) and fills raw and hash.
func signOp(priv crypto.PrivKey, o *op) error {
	body, err := proto.Marshal(o.toWire())
	if err != nil {
		return err
	}
	sig, err := priv.Sign(append([]byte(domainOp), body...))
	if err != nil {
		return err
	}
	raw, err := proto.Marshal(&pb.SignedOp{Op: body, Signature: sig})
	if err != nil {
		return err
	}
	o.raw, o.hash = raw, sha256.Sum256(raw)
	return nil
}

// decodeStoredOp decodes an op this node stored, and checks its form. Its
// signature is not checked again: it was when the op came, and what is
// stored is what was verified (a group of 65,536 ops spent seconds of
// every start on checking them again).
func decodeStoredOp(raw []byte) (*op, error) {
	var so pb.SignedOp
	if err := proto.Unmarshal(raw, &so); err != nil {
		return nil, fmt.Errorf("%w: op: %v", ErrBadFrame, err)
	}
	o, err := parseOp(&so)
	if err != nil {
		return nil, err
	}
	o.raw, o.hash = raw, sha256.Sum256(raw) // stored as encoded when it came
	return o, nil
}

// opFromWire decodes a SignedOp from a peer, checks its form and its
// actor's signature. Whether the actor may do it is the log's business
// (state.apply).
func opFromWire(so *pb.SignedOp) (*op, error) {
	o, err := parseOp(so)
	if err != nil {
		return nil, err
	}
	ok, err := verifySig(o.Actor, append([]byte(domainOp), so.GetOp()...), so.GetSignature())
	if err != nil {
		return nil, fmt.Errorf("%w: op actor key: %v", ErrBadFrame, err)
	}
	if !ok {
		return nil, errBadSignature
	}
	// The stored form is re-encoded from what was verified.
	if o.raw, err = proto.Marshal(&pb.SignedOp{Op: so.GetOp(), Signature: so.GetSignature()}); err != nil {
		return nil, err
	}
	o.hash = sha256.Sum256(o.raw)
	return o, nil
}

// parseOp decodes a SignedOp and checks its form, not its signature; the
// caller sets its stored form and hash.
func parseOp(so *pb.SignedOp) (*op, error) {
	var w pb.Op
	if err := proto.Unmarshal(so.GetOp(), &w); err != nil {
		return nil, fmt.Errorf("%w: op: %v", ErrBadFrame, err)
	}
	actor, err := peer.IDFromBytes(w.GetActor())
	if err != nil {
		return nil, fmt.Errorf("%w: op actor: %v", ErrBadFrame, err)
	}
	o := &op{GroupID: w.GetGroupId(), Index: w.GetIndex(), Prev: w.GetPrev(), Actor: actor, Kind: w.GetKind(),
		Addrs: w.GetAddrs(), Name: w.GetName(), Avatar: w.GetAvatar(), AvatarType: w.GetAvatarType(), Epoch: w.GetEpoch(),
		KeyHash: w.GetKeyHash(), TimeMS: w.GetTimeMs(), Nonce: w.GetNonce(), LastSeq: w.GetLastSeq(), InviteID: w.GetInviteId(),
		Parents: w.GetParents()}
	if len(w.GetTarget()) > 0 {
		if o.Target, err = peer.IDFromBytes(w.GetTarget()); err != nil {
			return nil, fmt.Errorf("%w: op target: %v", ErrBadFrame, err)
		}
	}
	if w.GetInvite() != nil {
		if o.Invite, err = inviteFromWire(w.GetInvite()); err != nil {
			return nil, err
		}
	}
	if err := o.checkForm(); err != nil {
		return nil, err
	}
	return o, nil
}

// checkForm checks what an op of its kind must carry.
func (o *op) checkForm() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s op: %s", ErrBadFrame, o.Kind, what) }
	if len(o.Addrs) > maxAddrs || len(o.Name) > MaxNameBytes || !utf8.ValidString(o.Name) || len(o.Avatar) > MaxAvatarBytes {
		return bad("a field over its limit")
	}
	for _, a := range o.Addrs {
		if len(a) > 256 {
			return bad("address too long")
		}
	}
	if o.Kind == OpCreate {
		if o.Index != 0 || len(o.GroupID) != 0 || len(o.Prev) != 0 || len(o.Parents) != 0 || o.Epoch != 0 || len(o.KeyHash) != sha256.Size || len(o.Nonce) < 16 {
			return bad("fields")
		}
		return nil
	}
	if len(o.GroupID) != groupIDLen {
		return bad("group")
	}
	// 1.x form: index and prev; 2.0.0: parents, ascending, distinct.
	if len(o.Parents) == 0 && (o.Index == 0 || len(o.Prev) != sha256.Size) {
		return bad("index or prev")
	}
	if len(o.Parents) > 0 && (o.Index != 0 || len(o.Prev) != 0 || len(o.Parents) > maxParents) {
		return bad("parents with index or prev, or too many")
	}
	for i, p := range o.Parents {
		if len(p) != sha256.Size || (i > 0 && bytes.Compare(o.Parents[i-1], p) >= 0) {
			return bad("parents not distinct hashes in ascending order")
		}
	}
	switch o.Kind {
	case OpAdd, OpRemove, OpPromote:
		if o.Target == "" {
			return bad("no target")
		}
	case OpLeave, OpRename:
	case OpRekey:
	case OpRevoke:
		if len(o.InviteID) != inviteIDLen {
			return bad("invite ID")
		}
	default:
		return fmt.Errorf("%w: unknown op %q", ErrBadFrame, o.Kind)
	}
	// Remove and rekey start an epoch; an add may (1.1.0: a newcomer
	// reads nothing sent before its add); nothing else does.
	switch {
	case o.Kind == OpRemove || o.Kind == OpRekey:
		if len(o.KeyHash) != sha256.Size {
			return bad("key hash")
		}
	case o.Kind == OpAdd:
		if len(o.KeyHash) != 0 && len(o.KeyHash) != sha256.Size {
			return bad("key hash")
		}
	case len(o.KeyHash) != 0:
		return bad("key hash")
	}
	return nil
}

// parentHashes are the ops o follows: its parents, or, in 1.x form, the
// op before it in the linear log (none: create).
func (o *op) parentHashes() [][]byte {
	if len(o.Parents) > 0 || o.Kind == OpCreate {
		return o.Parents
	}
	return [][]byte{o.Prev}
}

// startsEpoch reports whether o starts a key epoch (create: epoch 0).
func (o *op) startsEpoch() bool { return o.Kind != OpCreate && len(o.KeyHash) > 0 }

// groupIDOf derives the group ID from the create op.
func groupIDOf(create *op) []byte {
	var so pb.SignedOp
	proto.Unmarshal(create.raw, &so)
	sum := sha256.Sum256(so.GetOp())
	return sum[:groupIDLen]
}

// keyHash commits to an epoch's key in the op that starts the epoch. The
// create op (epoch 0) cannot name the group ID, which derives from it: its
// hash commits to the key alone.
func keyHash(gid []byte, epoch uint64, key []byte) []byte {
	if epoch == 0 {
		gid = nil
	}
	b := appendField(nil, []byte(domainKey))
	b = appendField(b, gid)
	b = binary.BigEndian.AppendUint64(b, epoch)
	sum := sha256.Sum256(appendField(b, key))
	return sum[:]
}

func newKey() []byte {
	k := make([]byte, keyLen)
	rand.Read(k)
	return k
}

// invite is an admin's signed permission to join.
type invite struct {
	GroupID   []byte
	ID        []byte
	Uses      uint32
	Expires   time.Time
	Admin     peer.ID
	Signature []byte
}

func (iv *invite) toWire() *pb.Invite {
	return &pb.Invite{GroupId: iv.GroupID, InviteId: iv.ID, Uses: iv.Uses, ExpiresMs: iv.Expires.UnixMilli(),
		Admin: []byte(iv.Admin), Signature: iv.Signature}
}

func (iv *invite) signed() []byte {
	b := appendField(nil, []byte(domainInvite))
	b = appendField(b, iv.GroupID)
	b = appendField(b, iv.ID)
	b = binary.BigEndian.AppendUint32(b, iv.Uses)
	b = binary.BigEndian.AppendUint64(b, uint64(iv.Expires.UnixMilli()))
	return appendField(b, []byte(iv.Admin))
}

// inviteFromWire checks the form of an invite and its signature (not
// whether its signer is an admin: that is the log's business).
func inviteFromWire(w *pb.Invite) (*invite, error) {
	admin, err := peer.IDFromBytes(w.GetAdmin())
	if err != nil {
		return nil, fmt.Errorf("%w: invite admin", ErrBadInvite)
	}
	iv := &invite{GroupID: w.GetGroupId(), ID: w.GetInviteId(), Uses: w.GetUses(), Expires: time.UnixMilli(w.GetExpiresMs()),
		Admin: admin, Signature: w.GetSignature()}
	if len(iv.GroupID) != groupIDLen || len(iv.ID) != inviteIDLen || len(iv.Signature) == 0 || len(iv.Signature) > 128 {
		return nil, fmt.Errorf("%w: fields", ErrBadInvite)
	}
	ok, err := verifySig(admin, iv.signed(), iv.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: admin key", ErrBadInvite)
	}
	if !ok {
		return nil, fmt.Errorf("%w: signature", ErrBadInvite)
	}
	return iv, nil
}

// inviteCode is what `group invite` prints.
type inviteCode struct {
	Invite  *invite
	Name    string
	Members []peer.AddrInfo
}

// encodeInviteCode is the text form: "mtg1" and base64url of pb.InviteCode.
func encodeInviteCode(c *inviteCode) (string, error) {
	w := &pb.InviteCode{Invite: c.Invite.toWire(), GroupName: c.Name}
	for _, m := range c.Members[:min(len(c.Members), maxHints)] {
		pa := &pb.PeerAddrs{Peer: []byte(m.ID)}
		for _, a := range m.Addrs[:min(len(m.Addrs), maxAddrs)] {
			pa.Addrs = append(pa.Addrs, a.String())
		}
		w.Members = append(w.Members, pa)
	}
	b, err := proto.Marshal(w)
	if err != nil {
		return "", err
	}
	return inviteCodeTag + base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeInviteCode parses and checks an invite code (its signature, not
// its validity in the group).
func decodeInviteCode(s string) (*inviteCode, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxInviteCode || !strings.HasPrefix(s, inviteCodeTag) {
		return nil, fmt.Errorf("%w: it starts with %q", ErrBadInvite, inviteCodeTag)
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(inviteCodeTag):])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInvite, err)
	}
	var w pb.InviteCode
	if err := proto.Unmarshal(b, &w); err != nil || w.GetInvite() == nil {
		return nil, fmt.Errorf("%w: damaged", ErrBadInvite)
	}
	iv, err := inviteFromWire(w.GetInvite())
	if err != nil {
		return nil, err
	}
	if len(w.GetGroupName()) > MaxNameBytes || len(w.GetMembers()) > maxHints {
		return nil, fmt.Errorf("%w: over its limits", ErrBadInvite)
	}
	c := &inviteCode{Invite: iv, Name: w.GetGroupName()}
	for _, m := range w.GetMembers() {
		if info, ok := peerAddrsFromWire(m); ok {
			c.Members = append(c.Members, info)
		}
	}
	return c, nil
}

// peerAddrsFromWire keeps the parseable addresses of a hint.
func peerAddrsFromWire(m *pb.PeerAddrs) (peer.AddrInfo, bool) {
	id, err := peer.IDFromBytes(m.GetPeer())
	if err != nil {
		return peer.AddrInfo{}, false
	}
	info := peer.AddrInfo{ID: id}
	for _, a := range m.GetAddrs()[:min(len(m.GetAddrs()), maxAddrs)] {
		if ai, err := peer.AddrInfoFromString(a + "/p2p/" + id.String()); err == nil {
			info.Addrs = append(info.Addrs, ai.Addrs...)
		}
	}
	return info, true
}

// seqSet is what a member holds of one author: every seq up to Contig,
// and Extra above it.
type seqSet struct {
	Contig uint64          `json:"contig"`
	Extra  map[uint64]bool `json:"extra,omitempty"`
}

func (s *seqSet) has(seq uint64) bool { return seq <= s.Contig || s.Extra[seq] }

func (s *seqSet) add(seq uint64) {
	if s.has(seq) {
		return
	}
	if seq != s.Contig+1 {
		if s.Extra == nil {
			s.Extra = map[uint64]bool{}
		}
		s.Extra[seq] = true
		return
	}
	s.Contig++
	for s.Extra[s.Contig+1] {
		delete(s.Extra, s.Contig+1)
		s.Contig++
	}
}

// maxOrZero is max of a head that may be nil (nothing held: 0).
func (s *seqSet) maxOrZero() uint64 {
	if s == nil {
		return 0
	}
	return s.max()
}

// max is the highest seq held.
func (s *seqSet) max() uint64 {
	m := s.Contig
	for k := range s.Extra {
		m = max(m, k)
	}
	return m
}

func (s *seqSet) toWire(author peer.ID) *pb.Head {
	head := &pb.Head{Author: []byte(author), Contiguous: s.Contig}
	for k := range s.Extra {
		if len(head.Extra) == maxExtra {
			break
		}
		head.Extra = append(head.Extra, k)
	}
	return head
}

func headFromWire(head *pb.Head) (peer.ID, *seqSet, error) {
	author, err := peer.IDFromBytes(head.GetAuthor())
	if err != nil || len(head.GetExtra()) > maxExtra {
		return "", nil, fmt.Errorf("%w: head", ErrBadFrame)
	}
	s := &seqSet{Contig: head.GetContiguous()}
	for _, seq := range head.GetExtra() {
		if seq > s.Contig {
			if s.Extra == nil {
				s.Extra = map[uint64]bool{}
			}
			s.Extra[seq] = true
		}
	}
	return author, s, nil
}

func gidString(b []byte) string { return hex.EncodeToString(b) }

func parseGID(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil && len(b) == groupIDLen
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }

func writeFrame(w io.Writer, m proto.Message) error { return frame.Write(w, m) }

// readFrame reads one frame of at most max bytes into m, with the group
// package's errors.
func readFrame(r *bufio.Reader, max int, m proto.Message) error {
	return frame.ReadAs(r, max, m, ErrFrameTooLarge, ErrBadFrame)
}

// messageFromWire checks a message opened from an envelope and converts
// it.
func messageFromWire(p *historypb.Message) (history.Wire, error) {
	m := history.WireFromPB(p)
	if err := m.Check(checkManifest); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return m, nil
}

// checkManifest checks an offered file's manifest.
func checkManifest(b []byte) error {
	_, err := transfer.DecodeManifest(b)
	return err
}

// fileInfo summarises a manifest (nil when there is none or it is bad).
func fileInfo(manifest []byte) *history.FileInfo {
	if len(manifest) == 0 {
		return nil
	}
	m, err := transfer.DecodeManifest(manifest)
	if err != nil {
		return nil
	}
	return &history.FileInfo{ID: m.ID(), Name: m.Name, Size: m.Size, MIME: m.MIME}
}

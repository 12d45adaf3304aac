package group

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

var writeSeeds = flag.Bool("write-seeds", false, "write the group fuzz seeds (real frames) into testdata/fuzz")

// realGroupFrames makes real frames of the group protocols with the code
// that makes them for the wire: a group's create and add ops, an
// envelope, an invite code, and groupsync requests and answers.
func realGroupFrames(t testing.TB) (topic [][]byte, sync [][]byte, codes []string) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(priv)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	otherID, _ := peer.IDFromPrivateKey(other)
	key := newKey()
	create := &op{Kind: OpCreate, Actor: self, Name: "crew", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, TimeMS: 1700000000000,
		Nonce: bytes.Repeat([]byte{7}, 16), KeyHash: keyHash(nil, 0, key)}
	if err := signOp(priv, create); err != nil {
		t.Fatal(err)
	}
	gid := groupIDOf(create)
	iv := &invite{GroupID: gid, ID: bytes.Repeat([]byte{1}, 16), Uses: 3, Expires: time.UnixMilli(1800000000000), Admin: self}
	iv.Signature, _ = priv.Sign(iv.signed())
	add := &op{GroupID: gid, Index: 1, Prev: create.hash[:], Actor: self, Kind: OpAdd, Target: otherID, Invite: iv, TimeMS: 1700000000001}
	signOp(priv, add)
	k2 := newKey()
	remove := &op{GroupID: gid, Index: 2, Prev: add.hash[:], Actor: self, Kind: OpRemove, Target: otherID, Epoch: 1,
		KeyHash: keyHash(gid, 1, k2), TimeMS: 1700000000002, LastSeq: 7}
	signOp(priv, remove)
	// 1.1.0: an admin's add that starts an epoch, and a revoke.
	rejoin := &op{GroupID: gid, Index: 3, Prev: remove.hash[:], Actor: self, Kind: OpAdd, Target: otherID, Epoch: 2,
		KeyHash: keyHash(gid, 2, newKey()), TimeMS: 1700000000003}
	signOp(priv, rejoin)
	revoke := &op{GroupID: gid, Index: 4, Prev: rejoin.hash[:], Actor: self, Kind: OpRevoke, InviteID: iv.ID, TimeMS: 1700000000004}
	signOp(priv, revoke)
	// 2.0.0: ops on the DAG, two of them on the same parent (a fork), and
	// one that merges them.
	forkA := &op{GroupID: gid, Parents: [][]byte{revoke.hash[:]}, Actor: self, Kind: OpRename, Name: "crew a", TimeMS: 1700000000005}
	signOp(priv, forkA)
	forkB := &op{GroupID: gid, Parents: [][]byte{revoke.hash[:]}, Actor: self, Kind: OpRekey, Epoch: 3, KeyHash: keyHash(gid, 3, newKey()), TimeMS: 1700000000006}
	signOp(priv, forkB)
	parents := [][]byte{forkA.hash[:], forkB.hash[:]}
	slices.SortFunc(parents, bytes.Compare)
	merge := &op{GroupID: gid, Parents: parents, Actor: self, Kind: OpRename, Name: "crew", TimeMS: 1700000000007}
	signOp(priv, merge)
	env, err := sealEnvelope(priv, self, gid, 1, 0, key, &historypb.Message{Id: history.GroupMessageID(gid, self, 1, 1700000000000), Kind: history.KindText, Text: "hello", Hlc: 1 << 20, SentAtMs: 1700000000000})
	if err != nil {
		t.Fatal(err)
	}
	// An edit of that message, and a receipt for it, sealed with the key
	// the fuzzer opens with (all zeros): it reaches the message's check.
	zero := make([]byte, keyLen)
	msgID := history.GroupMessageID(gid, self, 1, 1700000000000)
	edit, err := sealEnvelope(priv, self, gid, 2, 0, zero, &historypb.Message{Id: history.GroupMessageID(gid, self, 2, 1700000000001),
		Kind: history.KindEdit, Text: "hello again", Target: msgID, Hlc: 2 << 20, SentAtMs: 1700000000001})
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := sealEnvelope(priv, self, gid, 3, 0, zero, &historypb.Message{Id: history.GroupMessageID(gid, self, 3, 1700000000002),
		Kind: history.KindReceipt, Text: history.ReceiptDelivered, Refs: []string{msgID}, Hlc: 3 << 20, SentAtMs: 1700000000002})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []*pb.TopicMessage{
		{Body: &pb.TopicMessage_Envelope{Envelope: env.toWire()}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(add)}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(remove)}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(rejoin)}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(revoke)}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(forkB)}},
		{Body: &pb.TopicMessage_Op{Op: signedOpWire(merge)}},
		{Body: &pb.TopicMessage_Envelope{Envelope: edit.toWire()}},
		{Body: &pb.TopicMessage_Envelope{Envelope: receipt.toWire()}},
	} {
		b, _ := proto.Marshal(tm)
		topic = append(topic, b)
	}
	head := (&seqSet{Contig: 4, Extra: map[uint64]bool{6: true}}).toWire(self)
	for _, m := range []proto.Message{
		&pb.SyncRequest{Body: &pb.SyncRequest_Pull{Pull: &pb.Pull{GroupId: gid, Ops: 2, Heads: []*pb.Head{head}}}},
		&pb.SyncRequest{Body: &pb.SyncRequest_Join{Join: &pb.Join{Invite: iv.toWire(), Addrs: []string{"/ip4/127.0.0.1/udp/4001/quic-v1"}}}},
		&pb.SyncFrame{GroupId: gid, Ops: []*pb.SignedOp{signedOpWire(create), signedOpWire(add)}, Keys: []*pb.EpochKey{{Epoch: 0, Key: key}},
			Envelopes: []*pb.Envelope{env.toWire()}, Heads: []*pb.Head{head}, Members: []*pb.PeerAddrs{{Peer: []byte(self), Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}}, End: true},
		&pb.SyncFrame{Code: CodeInviteUsedUp, Message: "used up", End: true},
		&pb.SyncFrame{GroupId: gid, Ops: []*pb.SignedOp{signedOpWire(remove), signedOpWire(rejoin), signedOpWire(revoke)}, End: true},
		&pb.SyncFrame{Code: CodeInviteRevoked, Message: "revoked", End: true},
		&pb.SyncRequest{Body: &pb.SyncRequest_Pull{Pull: &pb.Pull{GroupId: gid, OpHeads: [][]byte{forkA.hash[:]}, Heads: []*pb.Head{head}}}},
		&pb.SyncFrame{GroupId: gid, Ops: []*pb.SignedOp{signedOpWire(create), signedOpWire(add), signedOpWire(remove), signedOpWire(rejoin),
			signedOpWire(revoke), signedOpWire(forkA), signedOpWire(forkB), signedOpWire(merge)}, Keys: []*pb.EpochKey{{Epoch: 3, Key: key}}, End: true},
	} {
		var buf bytes.Buffer
		writeFrame(&buf, m)
		sync = append(sync, buf.Bytes())
	}
	code, err := encodeInviteCode(&inviteCode{Invite: iv, Name: "crew", Members: []peer.AddrInfo{{ID: self}}})
	if err != nil {
		t.Fatal(err)
	}
	return topic, sync, []string{code}
}

// TestWriteGroupSeeds writes the seeds with -write-seeds.
func TestWriteGroupSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz")
	}
	topic, sync, codes := realGroupFrames(t)
	write := func(fuzzer string, i int, line string) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("real-%d", i)), []byte("go test fuzz v1\n"+line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range topic {
		write("FuzzGroupTopicMessage", i, "[]byte("+strconv.Quote(string(b))+")")
	}
	for i, b := range sync {
		write("FuzzGroupSyncFrame", i, "[]byte("+strconv.Quote(string(b))+")")
	}
	for i, c := range codes {
		write("FuzzInviteCode", i, "string("+strconv.Quote(c)+")")
	}
}

// FuzzGroupTopicMessage feeds the topic validator's decoders: no input
// may panic, and what decodes must survive a round trip.
func FuzzGroupTopicMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > MaxTopicMessage {
			return
		}
		var tm pb.TopicMessage
		if proto.Unmarshal(in, &tm) != nil {
			return
		}
		switch body := tm.Body.(type) {
		case *pb.TopicMessage_Envelope:
			env, err := envelopeFromWire(body.Envelope)
			if err != nil {
				return
			}
			env.verify()
			env.foreignKey(make([]byte, keyLen))
			env.open(make([]byte, keyLen))
			again, err := envelopeFromWire(env.toWire())
			if err != nil || !proto.Equal(again.toWire(), env.toWire()) {
				t.Fatalf("an envelope does not round-trip: %v", err)
			}
		case *pb.TopicMessage_Op:
			o, err := opFromWire(body.Op)
			if err != nil {
				return
			}
			var so pb.SignedOp
			if err := proto.Unmarshal(o.raw, &so); err != nil {
				t.Fatalf("an op's stored form does not decode: %v", err)
			}
			again, err := opFromWire(&so) // the signature too
			if err != nil || again.hash != o.hash {
				t.Fatalf("an op does not round-trip: %v", err)
			}
			if stored, err := decodeStoredOp(o.raw); err != nil || stored.hash != o.hash {
				t.Fatalf("a stored op does not decode: %v", err)
			}
			if o.Kind == OpCreate {
				if st, err := stateFromCreate(o); err == nil {
					st.clone().apply(o, time.UnixMilli(o.TimeMS), 0)
				}
			}
		}
	})
}

// FuzzGroupSyncFrame feeds the groupsync readers: requests and answers.
func FuzzGroupSyncFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var req pb.SyncRequest
		if readFrame(bufio.NewReader(bytes.NewReader(in)), MaxSyncFrame, &req) == nil {
			for _, head := range req.GetPull().GetHeads() {
				headFromWire(head)
			}
			if j := req.GetJoin(); j != nil {
				inviteFromWire(j.GetInvite())
			}
			if p := req.GetPush(); p != nil {
				decodeOpsKeys(p)
			}
			for _, m := range req.GetForward().GetMessages() {
				var tm pb.TopicMessage
				proto.Unmarshal(m, &tm)
			}
		}
		var fr pb.SyncFrame
		if readFrame(bufio.NewReader(bytes.NewReader(in)), MaxSyncFrame, &fr) != nil {
			return
		}
		ops, _, err := decodeOpsKeys(&fr)
		if err == nil && len(ops) > 0 {
			// The same ops in any order fold alike; and a pull's heads,
			// whatever they name, select ops of the DAG only.
			if d, st, err := dagFromOps(ops); err == nil {
				checkFold(t, d, st, ops)
				since, _ := d.since(req.GetPull().GetOpHeads())
				for _, o := range since {
					if !d.has(o.hash) {
						t.Fatal("since names an op the DAG does not hold")
					}
				}
			}
		}
		for _, e := range fr.GetEnvelopes() {
			envelopeFromWire(e)
		}
		for _, head := range fr.GetHeads() {
			if a, s, err := headFromWire(head); err == nil {
				if _, s2, err := headFromWire(s.toWire(a)); err != nil || s2.Contig != s.Contig || len(s2.Extra) != len(s.Extra) {
					t.Fatalf("a head does not round-trip: %v", err)
				}
			}
		}
		for _, m := range fr.GetMembers() {
			peerAddrsFromWire(m)
		}
	})
}

// FuzzInviteCode feeds the invite code parser.
func FuzzInviteCode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		c, err := decodeInviteCode(in)
		if err != nil {
			return
		}
		s, err := encodeInviteCode(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeInviteCode(s)
		if err != nil || again.Name != c.Name || !bytes.Equal(again.Invite.ID, c.Invite.ID) {
			t.Fatalf("an invite code does not round-trip: %v", err)
		}
	})
}

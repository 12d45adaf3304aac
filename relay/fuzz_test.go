package relay

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/relay/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

// fuzzKeys is a fixed identity and its sealing keys for the fuzzers.
func fuzzKeys(t testing.TB, seed byte) (crypto.PrivKey, peer.ID, *SealingKeys) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sk, err := DeriveSealingKeys(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id, sk
}

func frameOf(m proto.Message) []byte {
	var b bytes.Buffer
	writeFrame(&b, m)
	return b.Bytes()
}

// FuzzAccountRequest feeds the relay's account-request decoder and the
// checks it makes of each field: names, sealing keys, peer lists.
func FuzzAccountRequest(f *testing.F) {
	_, id, sk := fuzzKeys(f, 1)
	for _, req := range []*pb.AccountRequest{
		{Body: &pb.AccountRequest_Challenge{Challenge: &pb.ChallengeRequest{}}},
		{Body: &pb.AccountRequest_Register{Register: &pb.Register{Name: "alice", Invite: "mtinv-X", SealingKey: sk.wire, Profile: &pb.Profile{Nickname: "A"}, Proof: make([]byte, 64)}}},
		{Body: &pb.AccountRequest_Login{Login: &pb.Login{SealingKey: sk.wire, Proof: make([]byte, 64)}}},
		{Body: &pb.AccountRequest_Lookup{Lookup: &pb.Lookup{PeerId: []byte(id)}}},
		{Body: &pb.AccountRequest_Allow{Allow: &pb.SetAllow{Peers: [][]byte{[]byte(id)}}}},
		{Body: &pb.AccountRequest_Allow{Allow: &pb.SetAllow{Peers: [][]byte{[]byte(id)}, Members: [][]byte{[]byte(id)}}}},
		{Body: &pb.AccountRequest_Presence{Presence: &pb.PresenceQuery{Peers: [][]byte{[]byte(id)}}}},
		{Body: &pb.AccountRequest_ShortPut{ShortPut: &pb.ShortInvitePut{Invite: "mtg1-invite", ExpiresMs: 1800000000000}}},
		{Body: &pb.AccountRequest_ShortGet{ShortGet: &pb.ShortInviteGet{Code: newShortCode()}}},
		{Body: &pb.AccountRequest_Turn{Turn: &pb.TurnRequest{}}},
	} {
		f.Add(frameOf(req))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var req pb.AccountRequest
		scope := &fuzzScope{limit: MaxAccountFrame / 2}
		if err := readFrameIn(bufio.NewReader(bytes.NewReader(in)), MaxAccountFrame, &req, scope); err != nil {
			if scope.held != 0 {
				t.Fatalf("%d bytes still reserved after a failed read", scope.held)
			}
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		switch b := req.Body.(type) {
		case *pb.AccountRequest_Register:
			if n, err := FoldName(b.Register.Name); err == nil {
				if again, err := FoldName(n); err != nil || again != n {
					t.Fatalf("a folded name does not fold to itself: %q -> %q, %v", n, again, err)
				}
			}
			verifySealingKey(id, b.Register.SealingKey)
		case *pb.AccountRequest_Login:
			verifySealingKey(id, b.Login.SealingKey)
		case *pb.AccountRequest_Lookup:
			FoldName(b.Lookup.Name)
			peer.IDFromBytes(b.Lookup.PeerId)
		case *pb.AccountRequest_Allow:
			peersFromWire(b.Allow.Peers)
			peersFromWire(b.Allow.Members)
		case *pb.AccountRequest_Presence:
			peersFromWire(b.Presence.Peers)
		case *pb.AccountRequest_ShortPut:
			now := time.UnixMilli(1700000000000)
			if inv, exp, err := shortPutFromWire(b.ShortPut, now); err == nil && (inv == "" || len(inv) > MaxShortInviteLen || !exp.After(now) || exp.After(now.Add(MaxShortInviteTTL))) {
				t.Fatalf("a short invite passed out of bounds: %d bytes until %v", len(inv), exp)
			}
		case *pb.AccountRequest_ShortGet:
			if code, err := ParseShortCode(b.ShortGet.Code); err == nil {
				if again, err := ParseShortCode(FormatShortCode(code)); err != nil || again != code {
					t.Fatalf("a short code does not read back: %q -> %q, %v", code, again, err)
				}
			}
		}
	})
}

// FuzzAccountReply feeds the client's decoder of the relay's answers: a
// user record (whose sealing key must be its own identity's) and
// presence lists.
func FuzzAccountReply(f *testing.F) {
	_, id, sk := fuzzKeys(f, 2)
	f.Add(frameOf(&pb.AccountReply{User: &pb.User{Name: "bob", PeerId: []byte(id), SealingKey: sk.wire, Addrs: [][]byte{[]byte("/ip4/127.0.0.1/tcp/1/p2p-circuit")}, RegisteredMs: 1}}))
	f.Add(frameOf(&pb.AccountReply{Presence: []*pb.Presence{{PeerId: []byte(id), Online: true}, {PeerId: []byte(id), LastSeenMs: 1700000000000}}}))
	f.Add(frameOf(&pb.AccountReply{Code: codeNameTaken, Message: "taken"}))
	f.Add(frameOf(&pb.AccountPush{Presence: []*pb.Presence{{PeerId: []byte(id), Online: true}}}))
	f.Add(frameOf(&pb.AccountReply{ShortCode: newShortCode()}))
	f.Add(frameOf(&pb.AccountReply{Invite: "mtg1-invite", ExpiresMs: 1800000000000}))
	f.Add(frameOf(&pb.AccountReply{Turn: &pb.TurnCredentials{Urls: []string{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp"}, Username: "1800000000:" + id.String(), Password: "c2VjcmV0", ExpiresMs: 1800000000000}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		var rep pb.AccountReply
		if err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxAccountFrame, &rep); err != nil {
			return
		}
		if err := errOf(rep.Code, rep.Message); rep.Code != codeOK && err == nil {
			t.Fatal("a refusal decodes to no error")
		}
		if rep.User != nil {
			if u, err := userFromWire(rep.User); err == nil && u.SealingKey != nil {
				if _, err := verifySealingKey(u.PeerID, &pb.SealingKey{Kem: uint32(sealKEM().ID()), PublicKey: u.SealingKey, Signature: rep.User.SealingKey.Signature}); err != nil {
					t.Fatalf("a user passed with a sealing key its identity did not sign: %v", err)
				}
			}
		}
		for _, p := range rep.Presence {
			presenceFromWire(p)
		}
		if inv, err := shortInviteFromWire(&rep); err == nil && (inv == "" || len(inv) > MaxShortInviteLen) {
			t.Fatalf("a short invite's answer passed with %d bytes", len(inv))
		}
		ParseShortCode(rep.ShortCode)
		if tc, err := turnFromWire(rep.Turn); err == nil && (len(tc.URLs) == 0 || len(tc.URLs) > 8 || tc.Username == "" || tc.Password == "") {
			t.Fatalf("TURN credentials passed out of bounds: %+v", tc)
		}
	})
}

// FuzzMailboxFrames feeds both ends' mailbox decoders: the relay's of
// requests and the client's of pushes.
func FuzzMailboxFrames(f *testing.F) {
	_, id, _ := fuzzKeys(f, 3)
	f.Add(frameOf(&pb.MailboxRequest{Body: &pb.MailboxRequest_Deposit{Deposit: &pb.Deposit{Recipient: []byte(id), Sealed: []byte("sealed")}}}))
	f.Add(frameOf(&pb.MailboxRequest{Body: &pb.MailboxRequest_DropDone{DropDone: &pb.DropDone{Root: make([]byte, 32)}}}))
	f.Add(frameOf(&pb.Deliver{Envelopes: []*pb.Envelope{{Id: make([]byte, 16), Sealed: []byte("x"), DepositedMs: 1}}}))
	f.Add(frameOf(&pb.DeliverAck{Ids: [][]byte{make([]byte, 16)}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		var req pb.MailboxRequest
		if readFrame(bufio.NewReader(bytes.NewReader(in)), MaxMailboxFrame, &req) == nil {
			if d := req.GetDeposit(); d != nil {
				peer.IDFromBytes(d.Recipient)
			}
		}
		var d pb.Deliver
		readFrame(bufio.NewReader(bytes.NewReader(in)), MaxMailboxFrame, &d)
		var a pb.DeliverAck
		readFrame(bufio.NewReader(bytes.NewReader(in)), MaxMailboxFrame, &a)
	})
}

// FuzzOpenLetter: a recipient opens only what was sealed to it and
// signed by its sender; anything else is ErrBadSeal, never a panic.
func FuzzOpenLetter(f *testing.F) {
	ka, _, _ := fuzzKeys(f, 4)
	_, idB, skB := fuzzKeys(f, 5)
	sealed, err := SealLetter(ka, idB, skB.Public(), KindDM, [][]byte{[]byte("hello"), []byte("again")}, time.UnixMilli(1700000000000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:len(sealed)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := skB.OpenLetter(in)
		if err != nil {
			if !errors.Is(err, ErrBadSeal) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if l.From == "" {
			t.Fatal("a letter opened with no sender")
		}
	})
}

// FuzzOpenFile: a sealed file opens to exactly what was sealed, or fails.
func FuzzOpenFile(f *testing.F) {
	_, _, sk := fuzzKeys(f, 6)
	plain := make([]byte, fileSegment+100)
	rand.Read(plain)
	var sealed bytes.Buffer
	if err := SealFile(&sealed, bytes.NewReader(plain), sk.Public()); err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Bytes())
	var empty bytes.Buffer
	SealFile(&empty, bytes.NewReader(nil), sk.Public())
	f.Add(empty.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := sk.OpenFile(&out, bytes.NewReader(in)); err != nil {
			if !errors.Is(err, ErrBadSeal) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if bytes.Equal(in, sealed.Bytes()) && !bytes.Equal(out.Bytes(), plain) {
			t.Fatal("the sealed file opens to something else")
		}
	})
}

// TestSealFileRoundTripAndTamper: every size opens to itself; a cut, a
// flipped bit or a dropped segment is refused.
func TestSealFileRoundTripAndTamper(t *testing.T) {
	_, _, sk := fuzzKeys(t, 7)
	for _, n := range []int{0, 1, fileSegment - 1, fileSegment, fileSegment + 1, 3*fileSegment + 7} {
		plain := make([]byte, n)
		rand.Read(plain)
		var sealed bytes.Buffer
		if err := SealFile(&sealed, bytes.NewReader(plain), sk.Public()); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := sk.OpenFile(&out, bytes.NewReader(sealed.Bytes())); err != nil || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		b := sealed.Bytes()
		for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b[:len(b)-5]...), b[len(b)-4:]...), flip(b, len(b)/2)} {
			if err := sk.OpenFile(io.Discard, bytes.NewReader(bad)); !errors.Is(err, ErrBadSeal) {
				t.Fatalf("%d bytes: tampered file opens: %v", n, err)
			}
		}
		if n > fileSegment {
			hdr := 6 + int(b[4])<<8 | int(b[5])
			cut := append(append([]byte{}, b[:hdr]...), b[hdr+fileSegment+sealAEADOverhead:]...)
			if err := sk.OpenFile(io.Discard, bytes.NewReader(cut)); !errors.Is(err, ErrBadSeal) {
				t.Fatalf("%d bytes: a file without its first segment opens: %v", n, err)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 1
	return c
}

// FuzzFoldName: a name folds to a stable, valid form or is refused.
func FuzzFoldName(f *testing.F) {
	for _, s := range []string{"alice", "Bob.Smith", "x_y-z9", "ab", "admin", "élise", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := FoldName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if again, err := FoldName(n); err != nil || again != n {
			t.Fatalf("%q folds to %q, which folds to %q (%v)", s, n, again, err)
		}
	})
}

// FuzzFileDrop: a FileDrop item (what a file-drop or folder-drop letter
// holds) decodes or fails, its file ID is taken only when it is bounded
// hex, and the folder it carries only when it is a valid folder manifest.
func FuzzFileDrop(f *testing.F) {
	id := "9dbd97a4"
	full, _ := proto.Marshal(&pb.FileDrop{Relay: []byte("r"), Manifest: []byte("m"), Name: "notes.txt", Size: 5, FileId: &id})
	f.Add(full)
	old, _ := proto.Marshal(&pb.FileDrop{Relay: []byte("r"), Manifest: []byte("m"), Name: "notes.txt", Size: 5})
	f.Add(old)
	folder := &transfer.Manifest{Name: "photos", Size: 70<<10 + 5, ChunkSize: transfer.MinChunkSize, Chunks: make([]transfer.Hash, 2), Folder: true,
		Entries: []transfer.Entry{{Path: "a", Dir: true}, {Path: "a/b.jpg", Size: 70 << 10}, {Path: "c", Size: 5}, {Path: "empty", Dir: true}}}
	withFolder, _ := proto.Marshal(&pb.FileDrop{Relay: []byte("r"), Manifest: []byte("m"), Name: "photos", Size: folder.Size, FileId: &id, Folder: folder.Encode()})
	f.Add(withFolder)
	f.Fuzz(func(t *testing.T, in []byte) {
		var fd pb.FileDrop
		if proto.Unmarshal(in, &fd) != nil {
			return
		}
		got := fileIDOf(&fd)
		if len(got) > 128 || got != "" && got != fd.GetFileId() {
			t.Fatalf("file ID %q from %q", got, fd.GetFileId())
		}
		m, err := dropFolder(&fd)
		if err != nil {
			return
		}
		again, err := transfer.DecodeManifest(m.Encode())
		if !m.Folder || err != nil || again.Root() != m.Root() {
			t.Fatalf("a folder taken from a drop: %+v, again %v", m, err)
		}
	})
}

// FuzzShortCode feeds the reader of short invite codes, as people type
// them: what it takes reads back from its written form, and is the code
// of its check.
func FuzzShortCode(f *testing.F) {
	for _, s := range []string{newShortCode(), FormatShortCode(newShortCode()), "7kx2m-qd4ra-w", "", "OIL-----", "ÄÖÜ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		code, err := ParseShortCode(in)
		if err != nil {
			return
		}
		if len(code) != ShortCodeLen || shortCheck(code[:ShortCodeLen-1]) != code[ShortCodeLen-1] {
			t.Fatalf("%q read as %q", in, code)
		}
		if again, err := ParseShortCode(FormatShortCode(code)); err != nil || again != code {
			t.Fatalf("%q does not read back: %q, %v", code, again, err)
		}
	})
}

// fuzzScope is a resource scope with a memory limit.
type fuzzScope struct{ limit, held int }

func (s *fuzzScope) ReserveMemory(n int, _ uint8) error {
	if s.held+n > s.limit {
		return errors.New("over the limit")
	}
	s.held += n
	return nil
}

func (s *fuzzScope) ReleaseMemory(n int) { s.held -= n }

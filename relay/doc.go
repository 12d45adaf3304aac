// Package relay is what a meshtalk relay does for its users, both sides:
// the classic IM server's Register, Login, Logout, online status and
// offline delivery of messages and files, rebuilt so that the relay holds
// nothing it can read.
//
//   - wire.go specifies the two protocols, /meshtalk/relay/account/1.0.0
//     (register, login by signed challenge, lookup, presence) and
//     /meshtalk/relay/mailbox/1.0.0 (deposit, push, ack; file drop), with
//     their limits, codes and native types.
//   - server.go is the relay's side: accounts, sessions, presence, invites,
//     and what the operator sees (Users, Stats); mailbox.go its offline
//     mailbox (group-committed deposits, a pusher per logged-in recipient,
//     the sweeper); drop.go the file drop, both sides; metrics.go its
//     Prometheus metrics.
//   - client.go is a personal node's side: it logs in to each of its relays
//     and stays logged in, keeps their allow-lists equal to the friend list
//     (node calls SetAllow), deposits sealed letters (it is chat's and
//     group's Mailbox) and hands what the relays push to a Sink (node's
//     gives direct letters to chat, group letters to group, and presence
//     and dropped files to the node's events).
//   - names.go holds the username rules: what a name may be, the names
//     nobody may register, and the folded form under which one is unique.
//   - seal.go seals: letters to a recipient's sealing key (HPKE, RFC 9180,
//     with the hybrid ML-KEM-768 + X25519 KEM, so that stored mail stays
//     private against a future quantum attacker), signed by their author
//     inside the seal, and files in sealed segments. A user's sealing key
//     is derived from its identity key and signed by it, so the relay that
//     serves it cannot substitute its own.
//   - store.go documents the datastore keys of both sides.
//
// What a relay learns: which peer deposits for which account, when, and
// how many bytes; usernames and the public profile users choose to show;
// who is logged in; the allow-lists (who may see whose presence); that a
// file was dropped, and its size. What it never learns: what a letter or
// a dropped file says, its name, or whether a letter is a direct message,
// a group message or a file notice.
//
// The sender of a stream is its authenticated remote peer, never a field
// of a frame; a letter's author is the verified signer.
//
// Server and Client each run their goroutines and stream handlers in an
// internal/lifecycle Group that their Close stops.
package relay

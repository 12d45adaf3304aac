// Package group is this node's groups: the classic IM's CreateGroup,
// AddGroup, GetMyGroups and SendGroupMsg, on gossipsub.
//
//   - wire.go specifies the protocols: the gossipsub topic
//     /meshtalk/group/<id> (encrypted, author-signed messages and signed
//     membership operations), invites, and /meshtalk/groupsync/2.0.0
//     (catch-up, joining, new keys), with their limits, codes and native
//     types; pb/ holds their schema.
//   - state.go is what one op does to the group; dag.go the op DAG and
//     the order that folds it (the rule below).
//   - service.go is the service (New, Close), the topic validator, paced
//     publishing and storage, and documents the group datastore keys.
//   - api.go is the group actions (create, invite, add, kick, promote,
//     leave, rename, send, history, search, read marks).
//   - sync.go is both sides of groupsync and the relay mailbox seam.
//   - forward.go hands what this node publishes to the members it
//     reaches only through a relay, which gossipsub does not.
//   - score.go is gossipsub's peer scoring on the group topics.
//   - filter.go admits only members to a group's topic (gossipsub's
//     peer and subscription filters).
//
// A group is a set of signed membership operations that every member
// checks (only admins add, remove and promote; any member admits the
// holder of an admin's invite), folded in one order (below). Messages are sealed with the key of the
// current epoch (XChaCha20-Poly1305) and signed by their author (Ed25519,
// the node's identity); gossipsub's own signing is off, and the topic
// validator verifies each message once and rejects what a non-member
// signed or what does not decrypt; peer scoring graylists a peer that
// keeps sending such messages. Removing a member starts a new epoch
// whose key goes to each remaining member over groupsync, on libp2p's
// authenticated, encrypted channel; so does adding one, so that a
// newcomer reads nothing sent before it came. A removed or departed
// member's remove or leave op freezes its head: nothing it numbers later
// counts, whatever key it kept. Invites can be revoked (a signed op), and
// a removed member comes back only by an admin's explicit add. Each member numbers its messages, so
// that a member that was away, or that gossip dropped messages for, pulls
// exactly what it lacks by author and number (and every Config.Refresh
// pulls each group from an online member in turn, for the last messages
// of an author that gossip lost: nothing after them shows the gap);
// publishing is paced, and dedup by (author, number) makes delivery
// exactly-once whichever path delivers. Mailbox is the seam for the relay's offline mailbox.
//
// A group message's ID is derived (history.GroupMessageID) from its
// group, author, number and sent-at time; every member recomputes it.
// The messages themselves are history's (history.Message), stored under
// /msgs/g:<group ID>/ beside the direct conversations, in the same /chat
// datastore namespace as chat.
//
// What groups need of contacts (who is a friend, who is online, the name
// a member's profile shows) comes through the Friends interface; node
// gives the chat service. Events (group.update, and message.received for
// group messages, with a *history.Message) go out through Config.Emit.
// The service runs its goroutines and stream handler in an
// internal/lifecycle Group that Close stops.
//
// # Membership converges: the op DAG and its order
//
// Each op names as its parents the heads of the op DAG its actor held
// (an op of the 1.x linear log has its prev as its one parent). A member
// keeps every op it holds whose parents it holds, and the group is the
// fold of that set in this order:
//
//   - an op comes after every op it follows (its ancestors);
//   - of the ops whose parents have all come (ready), the first is the
//     one whose actor is the most senior admin at that point of the
//     order (the earliest place of the op that made it an admin: create,
//     then promotes), an actor that is no admin last; then the earlier
//     time (the op's own); then the lower SHA-256 of the signed op;
//   - an op whose actor may not do it at its place (not a member, no
//     admin, removed earlier in the order, an invite used up meanwhile)
//     is void: it stays in the set, is synced like any, and changes
//     nothing;
//   - an op that starts an epoch starts the next one, whatever number it
//     named (Claims keeps that number: its key hash and its key on the
//     wire carry it); the epoch's key is the one whose hash that op
//     names, so a void op's key is never used;
//   - an epoch whose op's actor did not know every op before it in the
//     order counts as members of that epoch whoever that actor handed the
//     key (its view: its ancestors, with the op). If one of them is no
//     member, a new epoch is due, as after a leave (departed, rekey in
//     turn): a removal on one branch is never undone by a key handed out
//     on the other.
//
// A member admits an op only if it is valid against the fold of the op's
// own ancestors (what its actor held): such an op is one an honest actor
// could sign, so every member admits the same ops; one that fails is
// refused (the validator rejects it). An op whose parents are not all
// held is ignored, not rejected (another branch, or ops on their way):
// the member pulls them. Members exchange the ops they lack by DAG heads
// (pull answers the ops that are not ancestors of the asker's heads);
// gossip and pushes carry new ops; a member's next op follows all the
// heads it holds and so merges the branches.
//
// Why it converges, in sketch. (1) The order is a function of the set:
// the ready ops and the state they are compared in are functions of the
// ops placed so far, and the comparison (rank, time, hash) is a strict
// total order, since hashes differ; by induction on the place, two
// members with the same set place the same op at each place. The state
// is a fold of that sequence by a deterministic apply, so two members
// with the same set hold the same members, epochs, key hashes, and so
// the same current key once they hold it (any member of the epoch
// serves it on a pull). (2) The fold terminates: the set is finite and
// each step places one op; while ops remain, one is ready, since the set
// is closed under parents (an op is admitted only after its parents) and
// acyclic (a parent is named by the hash of a signed op that exists
// before its child; admission order is a topological order), so the
// ops of a minimal unplaced ancestor are all placed. (3) A removed
// author's ops after its removal in the order are void: apply first
// checks that the actor is a member (an admin for admin ops) in the
// state at the op's place, and the removal, placed before, deleted it;
// a void op changes nothing, so it cannot undo the removal, and a key it
// handed out never becomes the current one. Which of two concurrent
// removals comes first is the order's choice, not a clock's: among ops
// ready at once the senior admin's come first, so when an admin removes
// a junior one that concurrently removes it (their two ops ready at
// once, or the senior's ops up to the removal waiting on no branch of a
// junior or a non-admin), the senior's removal stands and the junior's
// op is void, however the junior dates it. (4) Members that can reach
// each other end with the same set: pulls on connecting exchange what
// either lacks by heads, and an op ignored for missing parents makes its
// receiver pull. Messages sealed on a branch whose epoch the order voids
// or renumbers may not open at members of the other branch; they are
// ignored there, not rejected, so no forwarder is penalised: an
// envelope's key hint (wire.go) names the key it was sealed with, so a
// member tells a message of a branch it has not heard of yet (a key of
// its epoch's number that is not its own: ignored, and it pulls) from
// junk (named for its own key, and it does not open: rejected).
package group

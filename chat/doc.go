// Package chat is a person's contacts, profile and direct messages: the
// classic IM's AddFriend, GetMyFriends, UserOnLine, UpdateHeadPic,
// SendMsg, SendPicture and SendFace between two nodes. Groups are package
// group's; the stored messages, of both, are package history's.
//
//   - wire.go specifies the two protocols, /meshtalk/contact/1.0.0 (friend
//     requests, answers, unfriending, profiles) and /meshtalk/dm/1.0.0
//     (messages, acked per message), and holds their limits and native types.
//   - contacts.go keeps the contact records and the profile, and answers
//     what groups ask of contacts (Online, PeerName, FriendAddrs).
//   - dm.go is the durable outbox and its couriers, the receiver, and the
//     direct conversations' history, search and read receipts (over
//     history.Store).
//   - durable.go is the group commit that both the outbox and the receiver
//     use: one disk sync for every message that arrived during the last.
//   - service.go is the service (New, Close), presence from the host's
//     connections and from relays, and the Keeper that keeps friends
//     connected.
//   - images.go passes history's avatars and faces through.
//   - store.go documents chat's datastore keys.
//
// Delivery is exactly-once per message ID: a message is stored in the
// sender's outbox (synced) before Send returns; one courier per contact
// sends the outbox in order whenever the contact is reachable, across
// restarts; the receiver stores (synced) before it acks and acks a
// duplicate without storing it again. Conversations are ordered by a
// hybrid logical clock (history.Clock, shared with groups), so clock
// skew between two machines does not reorder a reply before its
// question.
//
// Message IDs are derived, not chosen (history.DMID): a ULID whose time
// is the message's sent-at time and whose rest hashes its sender,
// recipient and clock reading. Every receiver recomputes it and refuses
// a message whose ID differs, so that no peer can take the ID of
// another's message, direct or of a group, in the one index of IDs.
//
// The sender of a stream is its authenticated remote peer, never a field
// of a frame; only friends' messages are accepted, and a blocked peer's
// streams are reset.
//
// The relay mailbox plugs in through the Mailbox interface (dm.go): the
// courier parks the outbox there for a friend who stays unreachable, the
// mailbox hands what it holds to ReceiveParked, and the receiver's dedup by
// message ID keeps delivery exactly-once whichever path delivers.
//
// The service publishes its events (message.received, message.state,
// friend.*) through Config.Emit, and runs its goroutines and stream
// handlers in an internal/lifecycle Group that Close stops.
package chat

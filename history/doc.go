// Package history is the stored message, shared by direct messages
// (package chat) and groups (package group):
//
//   - message.go: Message and its Content (what a message says, embedded
//     wherever a message is: the stored record, the wire form Wire, the
//     API's JSON), message kinds and states, content limits and checks,
//     and Draft, a message to send.
//   - store.go: the history's datastore keys (/msgs/, /msgid/, /state/,
//     /read/, /readmark/, /late/, documented there), Store (records,
//     pages, search, read marks and unread counts, lookup by ID) and the
//     JSON and scan helpers of the /chat namespace.
//   - files.go: the index of the messages that offer a file
//     (FileMessages), which the file list reads instead of the history.
//   - clock.go: the hybrid logical clock that orders conversations, and
//     the derivation of message IDs.
//   - faces.go and images.go: the built-in faces, avatars and picture
//     thumbnails.
//
// A Store knows nothing of file transfer or of chat's outbox: its user
// gives what it needs in Config (FileInfo summarises a file's manifest;
// Pending says whether a direct message is still in the outbox).
package history

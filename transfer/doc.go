// Package transfer moves files between nodes: a file becomes a manifest
// (wire.go); its chunks are read where the file lies, checked against the
// manifest as they are served (source.go), or, for pictures and relay
// drops, kept in the content-addressed blob store (blobs.go). The sender
// offers it to a peer, and the receiver pulls verified chunks on several
// streams at once, from the sender and from other receivers that hold
// verified chunks (a group's members), records them durably and resumes
// where it was after any interruption (download.go). served.go counts
// what was served to whom. The protocol is specified at the
// top of wire.go; the datastore keys at the top of service.go.
//
// Downloads run in the background (background.go): the service reports
// their progress, completion or failure through Config.Emit, resumes the
// unfinished ones when node calls Resume, and runs its goroutines and
// stream handler in an internal/lifecycle Group that Close stops.
// partial.go writes a download's chunks in place as they verify.
// folder.go sends a whole folder as one manifest of its files.
package transfer

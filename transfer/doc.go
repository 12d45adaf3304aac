// Package transfer moves files between nodes: a file becomes a manifest
// (wire.go) and content-addressed chunks in the blob store (blobs.go); the
// sender offers it to a peer, and the receiver pulls verified chunks on
// several streams at once, records them durably and resumes where it was
// after any interruption (download.go). The protocol is specified at the
// top of wire.go; the datastore keys at the top of service.go.
//
// Downloads run in the background (background.go): the service reports
// their progress, completion or failure through Config.Emit, resumes the
// unfinished ones when node calls Resume, and runs its goroutines and
// stream handler in an internal/lifecycle Group that Close stops.
// partial.go writes a download's chunks in place as they verify.
package transfer

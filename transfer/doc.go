// Package transfer moves files between nodes: a file becomes a manifest
// (wire.go) and content-addressed chunks in the blob store (blobs.go); the
// sender offers it to a peer, and the receiver pulls verified chunks on
// several streams at once, records them durably and resumes where it was
// after any interruption (download.go). The protocol is specified at the
// top of wire.go; the datastore keys at the top of service.go.
package transfer

// Package pb holds the generated protobuf code of the call signaling
// protocol. Regenerate with `go generate ./...` (needs Debian's
// protobuf-compiler; protoc-gen-go comes from the module proxy at the
// version in go.mod).
package pb

//go:generate sh -c "go build -o \"${TMPDIR:-/tmp}/protoc-gen-go\" google.golang.org/protobuf/cmd/protoc-gen-go && protoc --plugin=protoc-gen-go=\"${TMPDIR:-/tmp}/protoc-gen-go\" -I. --go_out=paths=source_relative:. call.proto"

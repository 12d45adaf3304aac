package transfer

import (
	"bytes"

	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/transfer/pb"
)

// ParseRequestForTest decodes a request frame's body.
func ParseRequestForTest(b []byte) (first, count int) {
	var r pb.Request
	proto.Unmarshal(b, &r)
	return int(r.GetFirst()), int(r.GetCount())
}

// RequestFrameForTest is the request frame for chunks first..first+count-1
// of the file root names.
func RequestFrameForTest(root Hash, first, count int) []byte {
	var b bytes.Buffer
	writeFrame(&b, &pb.Request{Root: root[:], First: uint32(first), Count: uint32(count)})
	return b.Bytes()
}

// StagingName is the private folder a download stages its partial file in.
const StagingName = stagingName

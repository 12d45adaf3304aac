package transfer

import (
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/transfer/pb"
)

// ParseRequestForTest decodes a request frame's body.
func ParseRequestForTest(b []byte) (first, count int) {
	var r pb.Request
	proto.Unmarshal(b, &r)
	return int(r.GetFirst()), int(r.GetCount())
}

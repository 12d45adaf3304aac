package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/relay/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

// TestDropFits: a drop whose letter would not fit (the largest folder
// manifest a sender offers, 200 KiB, beside the sealed blob's manifest of
// a folder past 40 GiB) is refused before it is sealed or uploaded; one
// that fits is not. (The letter's size was checked only at the deposit,
// after the upload, leaving the blob on the relay.)
func TestDropFits(t *testing.T) {
	folder := &transfer.Manifest{Name: "photos", Folder: true, ChunkSize: transfer.MaxChunkSize}
	for i := 0; len(folder.Encode()) < 200<<10; i++ {
		folder.Entries = append(folder.Entries, transfer.Entry{Path: fmt.Sprintf("%0200d", i), Size: 1})
		folder.Size++
	}
	fd := &pb.FileDrop{Name: "photos", Size: folder.Size, Folder: folder.Encode()}
	relay := peer.ID("12D3KooWGPwsaX4f2C6c6uSAugTf6bABqNgrtFYdQHNqm3iFFzr6")
	sealed := func(chunks int) *transfer.Manifest {
		return &transfer.Manifest{Name: sealedName, ChunkSize: transfer.MaxChunkSize, Size: uint64(chunks) * transfer.MaxChunkSize, Chunks: make([]transfer.Hash, chunks)}
	}
	if err := dropFits(fd, nil, ""); err != nil {
		t.Fatalf("the folder alone: %v", err)
	}
	if err := dropFits(fd, sealed(4096), relay); err != nil {
		t.Fatalf("a 16 GiB folder: %v", err)
	}
	if err := dropFits(fd, sealed(12288), relay); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a 48 GiB folder: %v, want ErrTooLarge", err)
	}
}

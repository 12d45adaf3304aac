//go:build !linux

package transfer

import "errors"

// mapChunk: chunks are mapped on Linux only; elsewhere they are read.
func (b *Blobs) mapChunk(Hash, int) ([]byte, func(), error) { return nil, nil, errors.ErrUnsupported }

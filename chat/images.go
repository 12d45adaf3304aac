package chat

import "github.com/meshtalk/meshtalk/history"

// Image limits (history's).
const (
	// MaxImageInput bounds an avatar or picture file before decoding.
	MaxImageInput = history.MaxImageInput
	// AvatarSize is the side of the square an avatar is scaled to.
	AvatarSize = history.AvatarSize
	// MaxAvatarBytes bounds a stored avatar (a 256-pixel JPEG).
	MaxAvatarBytes = history.MaxAvatarBytes
	// ThumbnailSize bounds the longer side of a picture's thumbnail.
	ThumbnailSize = history.ThumbnailSize
)

// ErrNotImage is returned for data that is not a PNG, JPEG or GIF image.
var ErrNotImage = history.ErrNotImage

// MakeAvatar turns an image file into an avatar (history.MakeAvatar).
func MakeAvatar(b []byte) ([]byte, string, error) { return history.MakeAvatar(b) }

// FaceTable returns the built-in faces: name to emoji (history's).
func FaceTable() map[string]string { return history.FaceTable() }

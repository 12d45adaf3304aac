package history

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // avatars and pictures may be GIF
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"
)

// Image limits.
const (
	// MaxImageInput bounds an avatar or picture file before decoding.
	MaxImageInput = 5 << 20
	// maxImagePixels bounds the decoded size (a small file can claim a
	// huge canvas).
	maxImagePixels = 40 << 20
	// AvatarSize is the side of the square an avatar is scaled to.
	AvatarSize = 256
	// MaxAvatarBytes bounds a stored avatar (a 256-pixel JPEG).
	MaxAvatarBytes = 256 << 10
	// ThumbnailSize bounds the longer side of a picture's thumbnail.
	ThumbnailSize = 320
)

// ErrNotImage is returned for data that is not a PNG, JPEG or GIF image.
var ErrNotImage = errors.New("history: not a PNG, JPEG or GIF image")

// DecodeImage decodes a bounded image file (an avatar, a picture).
func DecodeImage(b []byte) (image.Image, error) {
	if len(b) > MaxImageInput {
		return nil, fmt.Errorf("history: %w image: %d bytes is over the %d MiB limit", ErrInvalid, len(b), MaxImageInput>>20)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w", ErrNotImage)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, fmt.Errorf("history: %w image: %dx%d pixels is too large", ErrInvalid, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotImage, err)
	}
	return img, nil
}

// MakeAvatar turns an image file into an avatar: the centre square,
// scaled to AvatarSize, as JPEG.
func MakeAvatar(b []byte) ([]byte, string, error) {
	img, err := DecodeImage(b)
	if err != nil {
		return nil, "", err
	}
	r := img.Bounds()
	side := min(r.Dx(), r.Dy())
	crop := image.Rect(0, 0, side, side).Add(r.Min).Add(image.Pt((r.Dx()-side)/2, (r.Dy()-side)/2))
	dst := image.NewRGBA(image.Rect(0, 0, AvatarSize, AvatarSize))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, crop, draw.Src, nil)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, "", err
	}
	return out.Bytes(), "image/jpeg", nil
}

// MakeThumbnail scales an image file to fit ThumbnailSize, as JPEG (PNG
// when it has transparency), under MaxThumbnailBytes.
func MakeThumbnail(b []byte) ([]byte, string, error) {
	img, err := DecodeImage(b)
	if err != nil {
		return nil, "", err
	}
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w > ThumbnailSize || h > ThumbnailSize {
		if w >= h {
			w, h = ThumbnailSize, max(1, h*ThumbnailSize/r.Dx())
		} else {
			w, h = max(1, w*ThumbnailSize/r.Dy()), ThumbnailSize
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, r, draw.Src, nil)
	for _, q := range []int{75, 50, 30} {
		var out bytes.Buffer
		if !dst.Opaque() {
			if err := png.Encode(&out, dst); err != nil {
				return nil, "", err
			}
			if out.Len() <= MaxThumbnailBytes {
				return out.Bytes(), "image/png", nil
			}
			// Too large as PNG: flatten to JPEG below.
		}
		out.Reset()
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: q}); err != nil {
			return nil, "", err
		}
		if out.Len() <= MaxThumbnailBytes {
			return out.Bytes(), "image/jpeg", nil
		}
	}
	return nil, "", errors.New("history: cannot fit the thumbnail in 64 KiB")
}

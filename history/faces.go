package history

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// faces is the built-in set of named emoji that `send --face NAME` sends
// (the classic IM's SendFace). A face travels by name, so both sides show
// the same thing.
var faces = map[string]string{
	"smile": "😄", "grin": "😁", "laugh": "😂", "wink": "😉", "blush": "😊",
	"love": "😍", "kiss": "😘", "think": "🤔", "cool": "😎", "cry": "😢",
	"sob": "😭", "angry": "😠", "shock": "😱", "sleep": "😴", "sick": "🤒",
	"thumbsup": "👍", "thumbsdown": "👎", "clap": "👏", "wave": "👋", "pray": "🙏",
	"ok": "👌", "heart": "❤️", "broken": "💔", "fire": "🔥", "party": "🎉",
	"gift": "🎁", "cake": "🎂", "coffee": "☕", "beer": "🍺", "rose": "🌹",
	"sun": "☀️", "moon": "🌙", "star": "⭐", "rocket": "🚀", "100": "💯",
}

// FaceTable returns the built-in faces: name to emoji.
func FaceTable() map[string]string { return maps.Clone(faces) }

// FaceNames lists the faces by name, sorted.
func FaceNames() []string {
	names := make([]string, 0, len(faces))
	for n := range faces {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func checkFace(name string) error {
	if _, ok := faces[name]; !ok {
		return fmt.Errorf("history: %w face: no face named %q; the faces are: %s", ErrInvalid, name, strings.Join(FaceNames(), ", "))
	}
	return nil
}

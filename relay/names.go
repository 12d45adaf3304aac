package relay

import (
	"fmt"
	"strings"
)

// Name limits.
const (
	minName = 3
	maxName = 32
)

// isReserved says whether nobody may register n: it would pass for the
// relay or its operator.
func isReserved(n string) bool {
	switch n {
	case "admin", "administrator", "root", "relay", "meshtalk", "system", "support", "help",
		"operator", "moderator", "everyone", "all", "null", "nobody", "security":
		return true
	}
	return false
}

// FoldName checks a username and returns its folded form (lower case),
// under which it is unique. A name is 3 to 32 of a-z, 0-9, '.', '_' and
// '-', starts with a letter and ends with a letter or digit.
func FoldName(name string) (string, error) {
	n := strings.ToLower(name)
	switch {
	case len(n) < minName || len(n) > maxName:
		return "", fmt.Errorf("%w: %q: a name has %d to %d characters", ErrBadName, name, minName, maxName)
	case n[0] < 'a' || n[0] > 'z':
		return "", fmt.Errorf("%w: %q: a name starts with a letter a-z", ErrBadName, name)
	case !isAlnum(n[len(n)-1]):
		return "", fmt.Errorf("%w: %q: a name ends with a letter or digit", ErrBadName, name)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "", fmt.Errorf("%w: %q: only letters a-z, digits, '.', '_' and '-' are allowed", ErrBadName, name)
		}
	}
	if isReserved(n) {
		return "", fmt.Errorf("%w: %q is reserved", ErrBadName, name)
	}
	return n, nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

//go:build !linux

package node

// onTmpfs reports whether path is on tmpfs: only Linux is asked.
func onTmpfs(string) bool { return false }

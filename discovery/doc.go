// Package discovery finds and reaches peers. So far it holds the friend
// code, the copy-pasteable word that carries a peer ID and its addresses.
package discovery

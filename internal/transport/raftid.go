package transport

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/cocoledger/coco/internal/ids"
)

// RaftID returns the raft id of a node: the first 8 bytes, big-endian, of
// the SHA-256 that the node id is the lowercase hex of, with 0 mapped to 1
// (raft reserves 0 for "none"). It is a pure function of the node id, so
// every node computes the same raft id for a peer from its certificate
// alone, and nothing maps one to the other in the ledger.
//
// A node id that is not 64 lowercase hex digits has no raft id: RaftID
// returns 0, which names no raft node (NewTLS refuses it as LocalID,
// SetPeers ignores it), so a malformed id fails loudly rather than
// aliasing a real node.
//
// Two nodes collide with probability 2^-64 per pair: about n²/2^65 for n
// nodes, under 10^-15 for a hundred. A collision is nevertheless to be
// refused when a node joins (the join flow of docs/replication.md §6, a
// later issue, checks the new raft id against the members'), so two nodes
// never share a raft id.
func RaftID(nodeID ids.NodeID) uint64 {
	s := string(nodeID)
	if len(s) != 2*sha256.Size {
		return 0
	}
	var b [8]byte
	for i := range b {
		hi, ok1 := lowerHex(s[2*i])
		lo, ok2 := lowerHex(s[2*i+1])
		if !ok1 || !ok2 {
			return 0
		}
		b[i] = hi<<4 | lo
	}
	for i := 16; i < len(s); i++ {
		if _, ok := lowerHex(s[i]); !ok {
			return 0
		}
	}
	return nonZero(binary.BigEndian.Uint64(b[:]))
}

// RaftIDOf returns the raft id of the node whose public key is pub (the
// key of its certificate): RaftID(crypto.PublicKeyID(pub)), without the
// hex round trip.
func RaftIDOf(pub crypto.PublicKey) (uint64, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return 0, fmt.Errorf("transport: raft id of a %T key: %w", pub, err)
	}
	sum := sha256.Sum256(der)
	return nonZero(binary.BigEndian.Uint64(sum[:8])), nil
}

func nonZero(id uint64) uint64 {
	if id == 0 {
		return 1
	}
	return id
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// hexID formats a raft id as raft's own logs do.
func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

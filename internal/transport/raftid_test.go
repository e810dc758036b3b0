package transport

import (
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
)

func TestRaftID(t *testing.T) {
	for _, c := range []struct {
		id   string
		want uint64
	}{
		{"0123456789abcdef" + strings.Repeat("0", 48), 0x0123456789abcdef},
		{"ffffffffffffffff" + strings.Repeat("f", 48), 0xffffffffffffffff},
		{strings.Repeat("0", 64), 1},                                 // raft forbids 0
		{strings.Repeat("0", 15) + "1" + strings.Repeat("0", 48), 1}, // the other node with raft id 1
		// Malformed: no raft id.
		{"", 0},
		{strings.Repeat("a", 63), 0},
		{strings.Repeat("a", 65), 0},
		{"0123456789ABCDEF" + strings.Repeat("0", 48), 0},
		{strings.Repeat("0", 63) + "g", 0},
	} {
		if got := RaftID(ids.NodeID(c.id)); got != c.want {
			t.Errorf("RaftID(%q) = %x, want %x", c.id, got, c.want)
		}
	}
}

func TestRaftIDOfMatchesNodeID(t *testing.T) {
	for range 8 {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		nodeID, err := crypto.PublicKeyID(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		got, err := RaftIDOf(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if want := RaftID(ids.NodeID(nodeID)); got != want || got == 0 {
			t.Fatalf("RaftIDOf = %x, RaftID(node id) = %x", got, want)
		}
	}
	if _, err := RaftIDOf("not a key"); err == nil {
		t.Fatal("RaftIDOf accepted a string")
	}
}

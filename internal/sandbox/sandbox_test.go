package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoledger/coco/internal/node"
)

// TestRepickPorts: a new node whose port was taken gets other ports and a
// clean slate, and the nodes that have not joined yet follow node0's new
// address; a node that has run keeps its configuration.
func TestRepickPorts(t *testing.T) {
	ws := t.TempDir()
	for _, name := range []string{"member0", "member1", "member2"} {
		if _, _, err := Keygen(ws, name); err != nil {
			t.Fatal(err)
		}
		if _, _, err := KeygenEncryption(ws, name); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := prepare(ws, Options{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	load := func(i int) *node.Config {
		cfg, err := node.LoadConfig(nodes[i].Config)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	before0, before1, before2 := load(0), load(1), load(2)
	// node0's failed start left files; node2 has run.
	for _, p := range []string{before0.Storage.DataDir, before0.Storage.LedgerDir, before2.Storage.DataDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "x"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !isFresh(nodes[1]) || isFresh(nodes[2]) {
		t.Fatal("isFresh: node1 never ran, node2 did")
	}
	if err := repickPorts(nodes, 0, 0); err != nil {
		t.Fatal(err)
	}
	after0, after1, after2 := load(0), load(1), load(2)
	if after0.Network.RPCAddress == before0.Network.RPCAddress || after0.Network.NodeAddress == before0.Network.NodeAddress {
		t.Fatalf("node0 kept its ports: %+v", after0.Network)
	}
	for _, p := range []string{before0.Storage.DataDir, before0.Storage.LedgerDir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s survived: %v", p, err)
		}
	}
	if after1.Join.Target != after0.Network.RPCAddress || after1.Network != before1.Network {
		t.Fatalf("node1 joins %s (want node0's new %s) with %+v (want its own %+v)", after1.Join.Target, after0.Network.RPCAddress, after1.Network, before1.Network)
	}
	if after2.Join.Target != before2.Join.Target {
		t.Fatal("a node that has run was reconfigured")
	}
}

package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/node"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/internal/vfs"
)

// cluster is a whole service in one process: real nodes (their own loops,
// ledgers and TLS RPC servers) whose node-to-node channel is a
// transport.MemNetwork, so tests can partition and isolate them. A pump
// goroutine delivers raft messages as they are sent.
type cluster struct {
	t     *testing.T
	root  string
	net   *transport.MemNetwork
	nodes []*service
	logs  []*syncBuffer
	ids   []uint64 // raft ids
	extra string   // appended to every node's configuration
	// manualTrust leaves joining nodes Pending until the members trust
	// them; otherwise the service trusts them automatically.
	manualTrust bool
}

// syncBuffer collects a node's log for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newCluster starts node0 as a new service and joins size-1 more nodes to
// it, each with its own data directory.
func newCluster(t *testing.T, size int, extra string) *cluster {
	t.Helper()
	c := emptyCluster(t, extra, false)
	for i := range size {
		c.add(t, i, "")
	}
	c.waitMembers(size)
	return c
}

// emptyCluster makes the identities and the network, with its pump, of a
// cluster without nodes yet.
func emptyCluster(t *testing.T, extra string, manualTrust bool) *cluster {
	t.Helper()
	c := &cluster{t: t, root: t.TempDir(), net: transport.NewMemNetwork(1), extra: extra, manualTrust: manualTrust}
	newConfig(t, c.root, "") // the identities
	done := make(chan struct{})
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			select {
			case <-c.net.Sent():
				c.net.Deliver()
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); <-pumped })
	return c
}

func (c *cluster) config(t *testing.T, i int, extra string) *node.Config {
	t.Helper()
	dir := filepath.Join(c.root, fmt.Sprintf("node%d", i))
	role := `[start]
members = [{ cert_file = "../member0_cert.pem" }]`
	if i > 0 {
		role = fmt.Sprintf("[join]\ntarget = %q", c.nodes[0].addr)
	}
	raw := fmt.Sprintf(`
name = "node%d"
[network]
rpc_address = "127.0.0.1:0"
[storage]
ledger_dir = "ledger"
data_dir = "data"
[service]
cert_file = "../service_cert.pem"
[consensus]
tick_ms = 10
election_ticks = 30
[ledger]
chunk_size = 4096
%s
%s
%s
`, i, role, c.extra, extra)
	cfg, err := node.ParseConfig([]byte(raw), dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// add starts node i (a new one joins; an existing one restarts from its
// data directory) and returns its Open error instead of failing if
// wantErr.
func (c *cluster) add(t *testing.T, i int, extra string) {
	t.Helper()
	if err := c.tryAdd(t, i, extra, nil); err != nil {
		t.Fatalf("node%d: %v", i, err)
	}
}

func (c *cluster) tryAdd(t *testing.T, i int, extra string, fsys vfs.FS) error {
	t.Helper()
	o := c.open(t, i, extra, fsys)
	return c.attach(t, i, o)
}

// opened is a node Open returned (or its error), not yet part of the
// cluster.
type opened struct {
	n      *node.Node
	cfg    *node.Config
	raftID uint64
	logs   *syncBuffer
	err    error
}

// open opens node i without touching the cluster's slices, so it may run
// in another goroutine (a join that waits for trust).
func (c *cluster) open(t *testing.T, i int, extra string, fsys vfs.FS) opened {
	o := opened{logs: &syncBuffer{}, cfg: c.config(t, i, extra)}
	opts := node.Options{
		FS:     fsys,
		Logger: slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		NewTransport: func(local uint64, h transport.Handler, fh transport.ForwardHandler) (transport.Transport, error) {
			o.raftID = local
			return c.net.JoinWithForward(local, h, fh), nil
		},
	}
	o.n, o.err = node.Open(o.cfg, opts)
	return o
}

// attach serves an opened node as node i of the cluster; node 0, new,
// is governed open.
func (c *cluster) attach(t *testing.T, i int, o opened) error {
	t.Helper()
	if i < len(c.logs) {
		c.logs[i] = o.logs
	} else {
		c.logs = append(c.logs, o.logs)
	}
	if o.err != nil {
		return o.err
	}
	s := serve(t, c.root, o.cfg, o.n)
	if i == 0 {
		// The members let nodes whose evidence is accepted join without
		// a vote each (TestClusterJoinWaitsForTrust votes).
		s.openService(client.Action{Name: "set_service_configuration", Args: map[string]any{"auto_trust_nodes": !c.manualTrust}})
	}
	if i < len(c.nodes) {
		c.nodes[i] = s
		c.ids[i] = o.raftID
	} else {
		c.nodes = append(c.nodes, s)
		c.ids = append(c.ids, o.raftID)
	}
	return nil
}

// primary waits until one running node is primary and returns its index.
func (c *cluster) primary() int {
	c.t.Helper()
	var found int
	c.eventually("a primary", func() bool {
		for i, s := range c.nodes {
			if s.node != nil && s.node.IsPrimary() {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

// primaryOtherThan waits until a running node other than old is primary
// (the majority's side of a partition) and returns its index.
func (c *cluster) primaryOtherThan(old int) int {
	c.t.Helper()
	var found int
	c.eventually("a primary on the majority side", func() bool {
		for i, s := range c.nodes {
			if i != old && s.node != nil && s.node.IsPrimary() {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

// waitMembers waits until the primary counts want voters.
func (c *cluster) waitMembers(want int) {
	c.t.Helper()
	c.eventually(fmt.Sprintf("%d voters", want), func() bool {
		for _, s := range c.nodes {
			if s.node != nil && s.node.IsPrimary() {
				return s.node.Voters() == want
			}
		}
		return false
	})
}

// waitCommitted waits until every running node has committed seqno.
func (c *cluster) waitCommitted(seqno ids.Seqno) {
	c.t.Helper()
	c.eventually(fmt.Sprintf("every node to commit %d", seqno), func() bool {
		for _, s := range c.nodes {
			if s.node != nil && s.node.CommittedSeqno() < seqno {
				return false
			}
		}
		return true
	})
}

// eventually polls cond (every 5 ms, up to 30 s): the nodes run on their
// own goroutines and clocks, so a condition is awaited, not slept for.
func (c *cluster) eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterWritesOnAnyNodeCommitEverywhere(t *testing.T) {
	c := newCluster(t, 3, "")
	ctx := context.Background()
	p := c.primary()
	var last ids.TxID
	for i, s := range c.nodes {
		// Every node takes writes: backups forward them to the primary.
		id, err := s.client("user0").LogWrite(ctx, client.Private, uint64(i), fmt.Sprintf("via node%d", i), client.WriteOptions{WaitCommit: true})
		if err != nil {
			t.Fatalf("write via node%d (primary is node%d): %v", i, p, err)
		}
		last = id
	}
	c.waitCommitted(last.Seqno)
	for _, s := range c.nodes {
		u := s.client("user0")
		for i := range c.nodes {
			got, err := u.LogRead(ctx, client.Private, uint64(i))
			if err != nil || got != fmt.Sprintf("via node%d", i) {
				t.Fatalf("%s reads %q, %v for message %d", s.cfg.Name, got, err, i)
			}
		}
		if st, err := u.TxStatus(ctx, last); err != nil || st != client.StatusCommitted {
			t.Fatalf("%s: %s is %s (%v)", s.cfg.Name, last, st, err)
		}
		nw, err := u.Network(ctx)
		if err != nil {
			t.Fatal(err)
		}
		primaries := 0
		for _, nd := range nw.Nodes {
			if nd.Primary {
				primaries++
			}
		}
		if len(nw.Nodes) != 3 || primaries != 1 {
			t.Fatalf("%s: /node/network lists %d nodes, %d primary: %+v", s.cfg.Name, len(nw.Nodes), primaries, nw.Nodes)
		}
	}
}

// TestClusterMinorityCannotCommit: a primary cut off from the others keeps
// executing for a moment but cannot commit; the majority elects a new
// primary and commits; after healing, the old primary catches up and what
// it executed alone answers Invalid everywhere.
func TestClusterMinorityCannotCommit(t *testing.T) {
	c := newCluster(t, 3, "")
	ctx := context.Background()
	old := c.primary()
	committed, err := c.nodes[old].client("user0").LogWrite(ctx, client.Public, 1, "before", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	c.net.Isolate(c.ids[old])
	lost, err := c.nodes[old].client("user0").LogWrite(ctx, client.Public, 2, "alone", client.WriteOptions{})
	if err != nil {
		t.Fatalf("the isolated primary refused a write before noticing it is alone: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.nodes[old].client("user0").WaitCommitted(short, lost); err == nil {
		t.Fatalf("%s committed on an isolated primary", lost)
	}
	newP := c.primaryOtherThan(old)
	after, err := c.nodes[newP].client("user0").LogWrite(ctx, client.Public, 3, "majority", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	c.net.Heal()
	c.waitCommitted(after.Seqno)
	for _, s := range c.nodes {
		u := s.client("user0")
		for _, want := range []struct {
			id ids.TxID
			st client.TxStatus
		}{{committed, client.StatusCommitted}, {after, client.StatusCommitted}, {lost, client.StatusInvalid}} {
			if st, err := u.TxStatus(ctx, want.id); err != nil || st != want.st {
				t.Fatalf("%s: %s is %s (%v), want %s", s.cfg.Name, want.id, st, err, want.st)
			}
		}
		if got, err := u.LogRead(ctx, client.Public, 2); err == nil {
			t.Fatalf("%s reads the lost write: %q", s.cfg.Name, got)
		}
		if got, err := u.LogRead(ctx, client.Public, 3); err != nil || got != "majority" {
			t.Fatalf("%s reads %q, %v", s.cfg.Name, got, err)
		}
	}
}

// TestClusterJoinRefusedForUnknownMeasurement: a joiner whose measurement
// the service does not allow is refused, clearly on both sides, until the
// members add it by proposal; a platform the members refuse is refused
// whatever the measurement.
func TestClusterJoinRefusedForUnknownMeasurement(t *testing.T) {
	c := newCluster(t, 1, "")
	// A node running other code than the allow-list names.
	err := c.tryAdd(t, 1, "[attestation]\nvirtual_code_id = \""+strings.Repeat("ab", 32)+"\"", nil)
	var refused *node.JoinRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "measurement_not_allowed") || !strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
		t.Fatalf("join with an unknown measurement: %v", err)
	}
	if logs := c.logs[0].String(); !strings.Contains(logs, "refused a joining node") || !strings.Contains(logs, strings.Repeat("ab", 32)) {
		t.Fatalf("the service did not log the refusal clearly:\n%s", logs)
	}
	// Once the members allow that code by proposal, the same node joins.
	code := strings.Repeat("ab", 32)
	if p := c.govern(0, client.Action{Name: "add_node_measurement", Args: map[string]string{"platform": "virtual", "measurement": code}}); p.State != "Accepted" {
		t.Fatalf("add_node_measurement: %+v", p)
	}
	c.add(t, 1, "[attestation]\nvirtual_code_id = \""+code+"\"")
	c.waitMembers(2)

	// A service that refuses the virtual platform altogether refuses a
	// virtual joiner whatever its code, naming the platform.
	if p := c.govern(0, client.Action{Name: "set_node_join_policy", Args: map[string]any{"platform": "virtual", "accepted": false}}); p.State != "Accepted" {
		t.Fatalf("set_node_join_policy: %+v", p)
	}
	err = c.tryAdd(t, 2, "", nil)
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "platform_not_accepted") || !strings.Contains(err.Error(), `"virtual"`) {
		t.Fatalf("join on a refused platform: %v", err)
	}
}

// TestClusterBackupStorageFault: a backup whose storage stops taking
// writes (its disk fills, its file system is remounted read-only, or its
// ledger directory loses write permission) stops clearly — NodeFailed on
// /node/ready, still reachable, the cause in its log — while the other two
// keep committing; once the fault is gone it restarts on the same files,
// catches up, and its ledger audits clean.
func TestClusterBackupStorageFault(t *testing.T) {
	for _, fault := range []struct {
		name   string
		inject func(*vfs.Mem)
		logs   string
	}{
		{"disk full", func(m *vfs.Mem) { m.FailWritesAfter(0, syscall.ENOSPC) }, "no space left on device"},
		{"remounted read-only", func(m *vfs.Mem) {
			m.FailWritesAfter(0, syscall.EROFS)
			m.FailNameChanges(syscall.EROFS)
		}, "read-only file system"},
		// Files already open stay writable: the node fails when it
		// next needs a new file (a ledger chunk, every 4 KiB here).
		{"ledger directory not writable", func(m *vfs.Mem) { m.FailNameChanges(syscall.EACCES) }, "permission denied"},
	} {
		t.Run(fault.name, func(t *testing.T) {
			c := newCluster(t, 2, "")
			// The third node keeps its files in memory, where the test
			// can break its storage.
			mem := memWithIdentities(t, c.root)
			svc, err := os.ReadFile(filepath.Join(c.root, "service_cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if err := vfs.WriteFileAtomic(mem, filepath.Join(c.root, "service_cert.pem"), svc, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := c.tryAdd(t, 2, "", mem); err != nil {
				t.Fatal(err)
			}
			c.waitMembers(3)
			ctx := context.Background()
			p := c.primary()
			if p == 2 {
				t.Fatal("the node that just joined is primary; the test wants it a backup")
			}
			b := 2
			fault.inject(mem)
			var last ids.TxID
			for i := range 40 {
				id, err := c.nodes[p].client("user0").LogWrite(ctx, client.Public, uint64(i), "x", client.WriteOptions{WaitCommit: true})
				if err != nil {
					t.Fatalf("write %d with one backup's storage broken: %v", i, err)
				}
				last = id
			}
			c.eventually("the backup to fail", func() bool { return c.nodes[b].node.Err() != nil })
			status, body := rawRequest(t, c.nodes[b], "", "GET", "/node/ready", "")
			if status != 503 || !strings.Contains(body, "NodeFailed") {
				t.Fatalf("/node/ready of the failed backup: %d %s", status, body)
			}
			if !strings.Contains(c.logs[b].String(), fault.logs) {
				t.Fatalf("the failed backup did not log why (%q):\n%s", fault.logs, c.logs[b].String())
			}
			healthy := c.nodes[3-p-b]
			c.eventually("the healthy backup to commit", func() bool { return healthy.node.CommittedSeqno() >= last.Seqno })
			if got, err := healthy.client("user0").TxStatus(ctx, last); err != nil || got != client.StatusCommitted {
				t.Fatalf("%s on the healthy nodes: %s, %v", last, got, err)
			}

			// The operator mends the storage and restarts the node on the
			// files it left.
			c.nodes[b].stop()
			mem.ClearFaults()
			if err := c.tryAdd(t, b, "", mem); err != nil {
				t.Fatalf("restart after the fault: %v", err)
			}
			c.waitCommitted(last.Seqno)
			if got, err := c.nodes[b].client("user0").TxStatus(ctx, last); err != nil || got != client.StatusCommitted {
				t.Fatalf("%s on the restarted backup: %s, %v", last, got, err)
			}
			ledgerDir := c.nodes[b].cfg.Storage.LedgerDir
			c.nodes[b].stop()
			if _, err := audit.Verify(mem, ledgerDir, nil); err != nil {
				t.Fatalf("audit of the backup's ledger after the fault: %v", err)
			}
		})
	}
}

// TestClusterJoinRequestsAreChecked sends /node/join requests that must be
// refused before anything is recorded: no client certificate, malformed
// JSON, bad addresses, evidence that is not a bundle, and a well-formed
// virtual bundle that binds another key (the caller's certificate is not
// the key the evidence vouches for). The service keeps one node.
func TestClusterJoinRequestsAreChecked(t *testing.T) {
	c := newCluster(t, 1, "")
	s := c.nodes[0]
	bundleFor := func(reportData []byte) string {
		var rd attest.ReportData
		copy(rd[:], reportData)
		p, err := attest.New(attest.PlatformVirtual)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Evidence(rd)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	body := func(evidence, nodeAddr string) string {
		return fmt.Sprintf(`{"evidence": %q, "node_address": %q, "rpc_address": "127.0.0.1:1"}`, evidence, nodeAddr)
	}
	for _, tc := range []struct {
		name, who, body string
		status          int
		code            string
	}{
		{"no client certificate", "", body(bundleFor(nil), "127.0.0.1:2"), 401, "MissingClientCertificate"},
		{"not JSON", "stranger", `{"evidence": `, 400, "InvalidInput"},
		{"unknown field", "stranger", `{"evidence": "", "node_address": "127.0.0.1:2", "rpc_address": "127.0.0.1:1", "extra": 1}`, 400, "InvalidInput"},
		{"bad node address", "stranger", body(bundleFor(nil), "nowhere"), 400, "InvalidInput"},
		{"evidence is not a bundle", "stranger", body(base64.StdEncoding.EncodeToString([]byte("not cbor")), "127.0.0.1:2"), 403, "JoinRefused"},
		{"evidence binds another key", "stranger", body(bundleFor([]byte("another key")), "127.0.0.1:2"), 403, "JoinRefused"},
	} {
		status, code := rawRequest(t, s, tc.who, "POST", "/node/join", tc.body)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	for _, want := range []string{"evidence_invalid", "report_data_mismatch"} {
		if !strings.Contains(c.logs[0].String(), want) {
			t.Errorf("the service did not log a %s refusal:\n%s", want, c.logs[0].String())
		}
	}
	if nw, err := s.client("user0").Network(context.Background()); err != nil || len(nw.Nodes) != 1 {
		t.Fatalf("refused joins changed the nodes table: %+v, %v", nw, err)
	}
}

// govern has member0 propose actions through node i and vote for them:
// with one member, the proposal is decided at once.
func (c *cluster) govern(i int, actions ...client.Action) *client.Proposal {
	c.t.Helper()
	ctx := context.Background()
	mc, m := c.nodes[i].client("member0"), c.nodes[i].member("member0")
	p, err := mc.ProposeActions(ctx, m, actions...)
	if err != nil {
		c.t.Fatalf("propose %v: %v", actions, err)
	}
	if p, err = mc.Vote(ctx, m, p.ProposalID, true); err != nil {
		c.t.Fatalf("vote on %v: %v", actions, err)
	}
	return p
}

// TestClusterRemoveNode: remove_node retires a node and the primary takes
// it out of the raft configuration; a removal that would leave no working
// majority fails the proposal with the reason, and nothing changes.
func TestClusterRemoveNode(t *testing.T) {
	c := newCluster(t, 3, "")
	ctx := context.Background()
	p := c.primary()
	a, b := (p+1)%3, (p+2)%3
	remove := func(i int) client.Action {
		return client.Action{Name: "remove_node", Args: map[string]string{"node_id": string(c.nodes[i].node.NodeID())}}
	}

	// With a isolated, removing b would leave the primary and a silent
	// node: no working majority.
	c.net.Isolate(c.ids[a])
	aID := fmt.Sprintf("%016x", c.ids[a])
	c.eventually("the primary to see the isolated node inactive", func() bool {
		var st struct {
			Progress map[string]struct {
				RecentActive bool `json:"recent_active"`
			} `json:"progress"`
		}
		_, err := c.nodes[p].client("").Do(ctx, "GET", "/node/consensus", nil, &st)
		pr, ok := st.Progress[aID]
		return err == nil && ok && !pr.RecentActive
	})
	if prop := c.govern(p, remove(b)); prop.State != "Failed" || !strings.Contains(prop.Failure, "majority") {
		t.Fatalf("removing a live voter while another is isolated: %+v; want Failed naming the lost majority", prop)
	}
	c.net.Heal()
	if got := c.nodes[p].node.Voters(); got != 3 {
		t.Fatalf("%d voters after a refused removal; want 3", got)
	}

	// Removing the isolated-then-healed node a keeps a quorum.
	if prop := c.govern(p, remove(a)); prop.State != "Accepted" {
		t.Fatalf("remove %s: %+v", c.nodes[a].cfg.Name, prop)
	}
	c.waitMembers(2)
	id, err := c.nodes[p].client("user0").LogWrite(ctx, client.Public, 1, "after the removal", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatalf("write after removing a node: %v", err)
	}
	c.eventually("the remaining backup to commit", func() bool { return c.nodes[b].node.CommittedSeqno() >= id.Seqno })
	nw, err := c.nodes[b].client("user0").Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nw.Nodes {
		if nd.NodeID == c.nodes[a].node.NodeID() && nd.Status != "Retired" {
			t.Fatalf("the removed node is %q in the nodes table, want Retired", nd.Status)
		}
	}
}

// TestClusterJoinWaitsForTrust: without auto-trust, a joining node whose
// evidence is accepted is Pending, and stays out of the configuration,
// until the members accept transition_node_to_trusted for it.
func TestClusterJoinWaitsForTrust(t *testing.T) {
	c := emptyCluster(t, "", true)
	c.add(t, 0, "")
	joined := make(chan opened, 1)
	go func() { joined <- c.open(t, 1, "", nil) }()

	ctx := context.Background()
	var pending ids.NodeID
	c.eventually("the joining node to be recorded Pending", func() bool {
		nw, err := c.nodes[0].client("user0").Network(ctx)
		if err != nil {
			return false
		}
		for _, nd := range nw.Nodes {
			if nd.Status == "Pending" {
				pending = nd.NodeID
				return true
			}
		}
		return false
	})
	select {
	case o := <-joined:
		t.Fatalf("the node joined before the members trusted it (%v)", o.err)
	default:
	}
	if got := c.nodes[0].node.Voters(); got != 1 {
		t.Fatalf("%d voters while the joiner is Pending; want 1", got)
	}
	if prop := c.govern(0, client.Action{Name: "transition_node_to_trusted", Args: map[string]string{"node_id": string(pending)}}); prop.State != "Accepted" {
		t.Fatalf("transition_node_to_trusted: %+v", prop)
	}
	if err := c.attach(t, 1, <-joined); err != nil {
		t.Fatalf("join after the members trusted the node: %v", err)
	}
	c.waitMembers(2)
	if c.nodes[1].node.NodeID() != pending {
		t.Fatalf("the node that joined is %s, the one trusted %s", c.nodes[1].node.NodeID(), pending)
	}
}

// TestClusterLedgerRekey: an accepted trigger_ledger_rekey proposal brings
// a new ledger secret to every node; the entries after it are encrypted under it and not
// under the old one, and all history still reads on every node, on a node
// that joins afterwards and on one that restarts. A rekey executed by a
// primary that cannot commit is forgotten with the rest of its lost
// suffix. Every ledger audits afterwards.
func TestClusterLedgerRekey(t *testing.T) {
	c := newCluster(t, 3, "")
	ctx := context.Background()
	write := func(via, id int) ids.TxID {
		t.Helper()
		txid, err := c.nodes[via].client("user0").LogWrite(ctx, client.Private, uint64(id), fmt.Sprintf("message %d", id), client.WriteOptions{WaitCommit: true})
		if err != nil {
			t.Fatalf("write %d via node%d: %v", id, via, err)
		}
		return txid
	}
	for i := range 6 {
		write(i%3, i)
	}
	// The members rekey the ledger by proposal, through a backup.
	via := c.nodes[(c.primary()+1)%3]
	mc, m := via.client("member0"), via.member("member0")
	prop, err := mc.ProposeActions(ctx, m, client.Action{Name: "trigger_ledger_rekey", Args: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if prop, err = mc.Vote(ctx, m, prop.ProposalID, true); err != nil || prop.State != "Accepted" {
		t.Fatalf("trigger_ledger_rekey: %+v, %v", prop, err)
	}

	var after []ids.TxID
	for i := 6; i < 12; i++ {
		after = append(after, write(i%3, i))
	}
	c.waitCommitted(after[len(after)-1].Seqno)
	c.add(t, 3, "") // joins after the rekey
	c.waitMembers(4)
	c.nodes[1].stop() // and one restarts
	c.add(t, 1, "")

	readAll := func() {
		t.Helper()
		for _, s := range c.nodes {
			u := s.client("user0")
			for i := range 12 {
				got, err := u.LogRead(ctx, client.Private, uint64(i))
				if err != nil || got != fmt.Sprintf("message %d", i) {
					t.Fatalf("%s reads %q, %v for message %d", s.cfg.Name, got, err, i)
				}
			}
		}
	}
	c.eventually("every node to read every message", func() bool {
		for _, s := range c.nodes {
			if _, err := s.client("user0").LogRead(ctx, client.Private, 11); err != nil {
				return false
			}
		}
		return true
	})
	readAll()
	for _, s := range c.nodes {
		secrets := s.node.LedgerSecretsForTest()
		if secrets.Len() != 2 {
			t.Fatalf("%s holds %d ledger secrets; want 2", s.cfg.Name, secrets.Len())
		}
		for _, id := range after {
			e, err := s.node.EntryForTest(id.Seqno)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := secrets.At(1).Open(nil, e.View, e.Seqno, e.Private, e.AppendAAD(nil)); err == nil {
				t.Fatalf("%s: entry %s after the rekey opens with the service's first secret", s.cfg.Name, id)
			}
			if _, err := secrets.At(e.Seqno).Open(nil, e.View, e.Seqno, e.Private, e.AppendAAD(nil)); err != nil {
				t.Fatalf("%s: entry %s does not open with the new secret: %v", s.cfg.Name, id, err)
			}
		}
	}

	// A rekey on a primary cut off from the others is lost with its term.
	old := c.primary()
	c.net.Isolate(c.ids[old])
	if _, err := c.nodes[old].node.RekeyForTest(); err != nil {
		t.Fatalf("the isolated primary refused a rekey before noticing it is alone: %v", err)
	}
	if n := c.nodes[old].node.LedgerSecretsForTest().Len(); n != 3 {
		t.Fatalf("the isolated primary holds %d secrets after its rekey; want 3", n)
	}
	newP := c.primaryOtherThan(old)
	last, err := c.nodes[newP].client("user0").LogWrite(ctx, client.Private, 12, "message 12", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	c.net.Heal()
	c.waitCommitted(last.Seqno)
	c.eventually("the old primary to read the majority's write", func() bool {
		got, err := c.nodes[old].client("user0").LogRead(ctx, client.Private, 12)
		return err == nil && got == "message 12"
	})
	readAll()
	if n := c.nodes[old].node.LedgerSecretsForTest().Len(); n != 2 {
		t.Fatalf("the old primary holds %d secrets after rolling back its lost rekey; want 2", n)
	}
	// Every ledger still audits, history and all.
	for _, s := range c.nodes {
		dir, cert := s.cfg.Storage.LedgerDir, s.node.ServiceCert()
		s.stop()
		if _, err := audit.Verify(vfs.OS(), dir, cert); err != nil {
			t.Fatalf("%s: ledger verify after the rekey: %v", s.cfg.Name, err)
		}
	}
}

// TestClusterQuotes: GET /node/quotes shows every node's evidence, the
// genesis node's included, and what verifying it establishes: the
// platform, the measurement every node runs, and report data binding
// that node's key.
func TestClusterQuotes(t *testing.T) {
	c := newCluster(t, 3, "")
	var doc struct {
		Quotes []struct {
			NodeID   ids.NodeID `json:"node_id"`
			Status   string     `json:"status"`
			Bundle   string     `json:"bundle"`
			Verified *struct {
				Platform    string `json:"platform"`
				Measurement string `json:"measurement"`
				ReportData  string `json:"report_data"`
				Secure      bool   `json:"secure"`
			} `json:"verified"`
			Error string `json:"error"`
		} `json:"quotes"`
	}
	if _, err := c.nodes[1].client("").Do(context.Background(), "GET", "/node/quotes", nil, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Quotes) != 3 {
		t.Fatalf("%d quotes, want 3: %+v", len(doc.Quotes), doc.Quotes)
	}
	byID := map[ids.NodeID]*node.Node{}
	for _, s := range c.nodes {
		byID[s.node.NodeID()] = s.node
	}
	var measurement string
	for _, q := range doc.Quotes {
		n, ok := byID[q.NodeID]
		if !ok || q.Verified == nil || q.Error != "" || q.Bundle == "" || q.Status != "Trusted" {
			t.Fatalf("quote %+v (error %q)", q, q.Error)
		}
		want, err := attest.ReportDataForKey(n.NodeCert().PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if q.Verified.Platform != "virtual" || q.Verified.Secure || q.Verified.ReportData != want.String() {
			t.Fatalf("node %s: verified %+v; want virtual, insecure, report data %s", q.NodeID, q.Verified, want)
		}
		if measurement == "" {
			measurement = q.Verified.Measurement
		} else if q.Verified.Measurement != measurement {
			t.Fatalf("nodes run different code: %s and %s", measurement, q.Verified.Measurement)
		}
	}
}

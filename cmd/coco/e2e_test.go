package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/sandbox"
)

// These tests run the real binary: separate processes, real TLS, real files.

var cocoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coco-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cocoBin = filepath.Join(dir, "coco")
	build := exec.Command("go", "build", "-o", cocoBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coco:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runningSandbox is a `coco sandbox` process that printed its ready line.
type runningSandbox struct {
	t        *testing.T
	ws       string
	cmd      *exec.Cmd
	manifest sandbox.Manifest
	exited   chan error
}

func startSandbox(t *testing.T, ws string, args ...string) *runningSandbox {
	t.Helper()
	cmd := exec.Command(cocoBin, append([]string{"sandbox", "--workspace", ws, "--port", "0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sb := &runningSandbox{t: t, ws: ws, cmd: cmd, exited: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if !found && strings.HasPrefix(sc.Text(), "Coco sandbox ready") {
				found = true
				ready <- true
			}
		}
		if !found {
			ready <- false
		}
		io.Copy(io.Discard, stdout)
		sb.exited <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("sandbox exited before it was ready: %v", <-sb.exited)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("sandbox not ready after 2 minutes")
	}
	raw, err := os.ReadFile(filepath.Join(ws, sandbox.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sb.manifest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.stop() })
	return sb
}

// stop interrupts the sandbox like Ctrl-C and waits for it to exit.
func (sb *runningSandbox) stop() error {
	if sb.cmd == nil {
		return nil
	}
	sb.cmd.Process.Signal(os.Interrupt)
	err := <-sb.exited
	sb.cmd = nil
	return err
}

func (sb *runningSandbox) client() *client.Client {
	sb.t.Helper()
	return sb.clientOf(0)
}

// primary returns the index of the node that is primary, asking c.
func (sb *runningSandbox) primary(ctx context.Context, c *client.Client) int {
	sb.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		nw, err := c.Network(ctx)
		if err == nil {
			for _, nd := range nw.Nodes {
				for i, m := range sb.manifest.Nodes {
					if nd.Primary && nd.RPCAddress == m.RPCAddress {
						return i
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	sb.t.Fatal("no primary within a minute")
	return 0
}

// clientOf returns a client of user0 for node i.
func (sb *runningSandbox) clientOf(i int) *client.Client {
	sb.t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			sb.t.Fatal(err)
		}
		return b
	}
	c, err := client.New(client.Config{
		Address:        sb.manifest.Nodes[i].RPCAddress,
		ServiceCertPEM: read(sb.manifest.ServiceCert),
		CertPEM:        read(filepath.Join(sb.ws, "user0_cert.pem")),
		KeyPEM:         read(filepath.Join(sb.ws, "user0_privk.pem")),
	})
	if err != nil {
		sb.t.Fatal(err)
	}
	sb.t.Cleanup(c.CloseIdleConnections)
	return c
}

func coco(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(cocoBin, args...).CombinedOutput()
	return string(out), err
}

func TestSandboxReceiptAndLedgerCLI(t *testing.T) {
	ws := t.TempDir()
	sb := startSandbox(t, ws)
	c := sb.client()
	ctx := context.Background()
	id, err := c.LogWrite(ctx, client.Private, 1, "hello", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Receipt(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(t.TempDir(), "receipt.json")
	if err := os.WriteFile(rf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := coco(t, "receipt", "verify", "--receipt", rf, "--service-cert", sb.manifest.ServiceCert); err != nil || !strings.Contains(out, "receipt OK") {
		t.Fatalf("receipt verify: %v\n%s", err, out)
	}
	// A receipt for another transaction id's leaf must not verify.
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	doc["leaf_components"].(map[string]any)["claims_digest"] = strings.Repeat("ab", 32)
	tampered, _ := json.Marshal(doc)
	os.WriteFile(rf, tampered, 0o644)
	if out, err := coco(t, "receipt", "verify", "--receipt", rf, "--service-cert", sb.manifest.ServiceCert); err == nil {
		t.Fatalf("tampered receipt verified:\n%s", out)
	}
	if err := sb.stop(); err != nil {
		t.Fatalf("sandbox did not stop cleanly: %v", err)
	}
	out, err := coco(t, "ledger", "verify", sb.manifest.Nodes[0].LedgerDir, "--service-cert", sb.manifest.ServiceCert)
	if err != nil || !strings.Contains(out, "ledger OK") {
		t.Fatalf("ledger verify: %v\n%s", err, out)
	}
	// One flipped byte in the ledger: the CLI fails and names the spot.
	// (Flips in committed chunks at every kind of offset are covered by the
	// node package's tamper test.)
	chunks, _ := filepath.Glob(filepath.Join(sb.manifest.Nodes[0].LedgerDir, "ledger_*"))
	if len(chunks) == 0 {
		t.Fatal("no ledger file after a clean stop")
	}
	orig, err := os.ReadFile(chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)/2] ^= 0x08
	if err := os.WriteFile(chunks[0], bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = coco(t, "ledger", "verify", sb.manifest.Nodes[0].LedgerDir, "--service-cert", sb.manifest.ServiceCert)
	if err == nil || !strings.Contains(out, filepath.Base(chunks[0])) || !strings.Contains(out, "offset") {
		t.Fatalf("tampered ledger: %v\n%s", err, out)
	}
	// Bad CLI input gets a clear error and a non-zero exit.
	if out, err := coco(t, "ledger", "verify", filepath.Join(ws, "missing")); err == nil {
		t.Fatalf("verify of a missing dir succeeded:\n%s", out)
	}
	if out, err := coco(t, "keygen", "--name", "../evil"); err == nil || !strings.Contains(out, "identity name") {
		t.Fatalf("keygen accepted a path as name: %v\n%s", err, out)
	}
}

// TestKill9PrimaryUnderLoad is the crash test of a 3-node service: 32
// clients, spread over the nodes, write with ?wait=commit; the primary is
// killed with SIGKILL. A new primary must take writes within 5 seconds,
// every write answered Committed before the kill must be readable and
// Committed on every node, the killed node must restart by hand (the
// sandbox keeps running) and catch up, every ledger must audit, and the
// committed chunks must be byte-identical across nodes.
func TestKill9PrimaryUnderLoad(t *testing.T) {
	ws := t.TempDir()
	sb := startSandbox(t, ws, "--nodes", "3", "--ledger-chunk-size", "65536")
	nodes := sb.manifest.Nodes
	clients := make([]*client.Client, len(nodes))
	for i := range nodes {
		clients[i] = sb.clientOf(i)
	}
	ctx := context.Background()
	victim := sb.primary(ctx, clients[0])

	const writers, killAfter, afterKill = 32, 1500, 300
	var (
		mu          sync.Mutex
		acked       = map[uint64]ids.TxID{}
		killedAt    time.Time
		resumedAt   time.Time
		sinceKill   int
		reached     = make(chan struct{})
		resumed     = make(chan struct{})
		reachedOnce sync.Once
		resumedOnce sync.Once
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := w % len(nodes)
			for i := uint64(0); loadCtx.Err() == nil; i++ {
				id := uint64(w)<<32 | i
				started := time.Now()
				txid, err := clients[node].LogWrite(loadCtx, client.Private, id, fmt.Sprintf("msg-%d", id), client.WriteOptions{WaitCommit: true})
				if err != nil {
					// The node died, or lost the primary mid-write: this
					// write may or may not have happened; only answers
					// count. Carry on through another node.
					node = (node + 1) % len(nodes)
					continue
				}
				mu.Lock()
				acked[id] = txid
				if len(acked) >= killAfter {
					reachedOnce.Do(func() { close(reached) })
				}
				// Writes resume when one sent after the kill commits (one
				// answered just after it may have been executed before).
				if !killedAt.IsZero() && started.After(killedAt) {
					if sinceKill == 0 {
						resumedAt = time.Now()
					}
					if sinceKill++; sinceKill >= afterKill {
						resumedOnce.Do(func() { close(resumed) })
					}
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-reached:
	case <-time.After(3 * time.Minute):
		t.Fatal("writes did not reach the kill point")
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := syscall.Kill(nodes[victim].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resumed:
	case <-time.After(time.Minute):
		t.Fatal("writes did not resume within a minute of killing the primary")
	}
	stopLoad()
	wg.Wait()
	mu.Lock()
	pause := resumedAt.Sub(killedAt)
	mu.Unlock()
	t.Logf("killed primary %s after %d acknowledged writes; the first write sent after the kill committed %v after it", nodes[victim].Name, killAfter, pause)
	if pause > 5*time.Second {
		t.Errorf("writes resumed %v after the primary was killed, want within 5s", pause)
	}

	// The operator starts the killed node again by hand; it rejoins as
	// itself and catches up.
	restarted := exec.Command(cocoBin, "node", "start", "--config", nodes[victim].Config)
	logf, err := os.Create(filepath.Join(t.TempDir(), "restarted.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	restarted.Stdout, restarted.Stderr = logf, logf
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	restartedDone := make(chan error, 1)
	go func() { restartedDone <- restarted.Wait() }()
	defer func() {
		restarted.Process.Signal(syscall.SIGTERM)
		<-restartedDone
	}()
	var maxSeqno ids.Seqno
	for _, txid := range acked {
		maxSeqno = max(maxSeqno, txid.Seqno)
	}
	waitCaughtUp(t, clients[victim], maxSeqno, restartedDone, logf.Name())

	for i, c := range clients {
		for id, txid := range acked {
			got, err := c.LogRead(ctx, client.Private, id)
			if err != nil || got != fmt.Sprintf("msg-%d", id) {
				t.Fatalf("%s: write %d (%s) answered Committed before the kill reads %q, %v", nodes[i].Name, id, txid, got, err)
			}
			if st, err := c.TxStatus(ctx, txid); err != nil || st != client.StatusCommitted {
				t.Fatalf("%s: %s is %s (%v)", nodes[i].Name, txid, st, err)
			}
		}
	}

	restarted.Process.Signal(syscall.SIGTERM)
	if err := <-restartedDone; err != nil {
		t.Fatalf("restarted node did not stop cleanly: %v", err)
	}
	restartedDone <- nil // for the deferred stop
	if err := sb.stop(); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		out, err := coco(t, "ledger", "verify", nd.LedgerDir, "--service-cert", sb.manifest.ServiceCert)
		if err != nil {
			t.Fatalf("ledger verify %s: %v\n%s", nd.Name, err, out)
		}
	}
	shared := sameCommittedChunks(t, nodes)
	if shared < 2 {
		t.Fatalf("only %d committed chunks shared by all nodes; the test should roll several", shared)
	}
	t.Logf("%d writes acknowledged; all on every node; %d committed chunks byte-identical on all nodes", len(acked), shared)
}

// waitCaughtUp polls a node until it has committed seqno (bounded: a
// minute), failing early if its process exits.
func waitCaughtUp(t *testing.T, c *client.Client, seqno ids.Seqno, exited <-chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-exited:
			raw, _ := os.ReadFile(logPath)
			t.Fatalf("restarted node exited: %v; its log:\n%s", err, tailLines(string(raw), 40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last, err := c.Commit(ctx)
		cancel()
		if err == nil && last.Seqno >= seqno {
			return
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(logPath)
			t.Fatalf("node did not catch up to seqno %d within a minute (at %v, %v); its log:\n%s", seqno, last, err, tailLines(string(raw), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sameCommittedChunks checks that the committed chunk files of the nodes
// are one sequence: a node that committed less holds a prefix of the
// others' chunks, and a chunk present on several nodes has the same bytes
// on each. It returns how many chunks every node holds.
func sameCommittedChunks(t *testing.T, nodes []sandbox.NodeEntry) int {
	t.Helper()
	var lists [][]string
	for _, nd := range nodes {
		names, err := filepath.Glob(filepath.Join(nd.LedgerDir, "*.committed"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range names {
			names[i] = filepath.Base(names[i])
		}
		sort.Slice(names, func(i, j int) bool { return chunkFirst(t, names[i]) < chunkFirst(t, names[j]) })
		lists = append(lists, names)
	}
	shared, longest := len(lists[0]), 0
	for n, l := range lists {
		shared = min(shared, len(l))
		if len(l) > len(lists[longest]) {
			longest = n
		}
	}
	for i, name := range lists[longest] {
		ref, err := os.ReadFile(filepath.Join(nodes[longest].LedgerDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for n, l := range lists {
			if i >= len(l) {
				continue
			}
			if l[i] != name {
				t.Fatalf("committed chunk %d is %s on %s but %s on %s", i, l[i], nodes[n].Name, name, nodes[longest].Name)
			}
			raw, err := os.ReadFile(filepath.Join(nodes[n].LedgerDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, ref) {
				t.Fatalf("committed chunk %s differs between %s and %s", name, nodes[longest].Name, nodes[n].Name)
			}
		}
	}
	return shared
}

// chunkFirst is the first seqno in a chunk file name ledger_<first>-<last>.committed.
func chunkFirst(t *testing.T, name string) uint64 {
	t.Helper()
	var first, last uint64
	if _, err := fmt.Sscanf(name, "ledger_%d-%d.committed", &first, &last); err != nil {
		t.Fatalf("chunk name %q: %v", name, err)
	}
	return first
}

// TestJoinRefusalsAreClearOnBothSides starts nodes that must not join a
// running service: one whose code (measurement) is not on the allow-list,
// and one that trusts another service's certificate. Each exits non-zero
// saying why, and the service logs the refusal.
func TestJoinRefusalsAreClearOnBothSides(t *testing.T) {
	ws := t.TempDir()
	sb := startSandbox(t, ws, "--nodes", "1")
	joiner := func(name, extra, serviceCert string) (string, error) {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`name = %q
[network]
rpc_address = "127.0.0.1:0"
node_address = "127.0.0.1:0"
[storage]
ledger_dir = "ledger"
data_dir = "data"
[service]
cert_file = %q
[join]
target = %q
timeout_ms = 20000
%s
`, name, serviceCert, sb.manifest.Nodes[0].RPCAddress, extra)
		path := filepath.Join(dir, "node.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return coco(t, "node", "start", "--config", path)
	}

	code := strings.Repeat("ab", 32)
	out, err := joiner("other-code", "[attestation]\nvirtual_code_id = \""+code+"\"", sb.manifest.ServiceCert)
	if err == nil || !strings.Contains(out, "refused to let this node join") || !strings.Contains(out, "measurement_not_allowed") || !strings.Contains(out, code) {
		t.Fatalf("joiner with an unknown measurement: %v\n%s", err, out)
	}
	logPath := filepath.Join(filepath.Dir(sb.manifest.Nodes[0].Config), "node.log")
	if raw, _ := os.ReadFile(logPath); !strings.Contains(string(raw), "refused a joining node") || !strings.Contains(string(raw), code) {
		t.Fatalf("the service did not log the refusal:\n%s", raw)
	}

	// A node pinned to another service's certificate finds that the
	// target is not the service it trusts, and says so.
	other := t.TempDir()
	if out, err := coco(t, "keygen", "--name", "otherservice", "--out", other); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	out, err = joiner("wrong-service", "", filepath.Join(other, "otherservice_cert.pem"))
	if err == nil || !strings.Contains(out, "is not a node of the service") {
		t.Fatalf("joiner pinned to another service: %v\n%s", err, out)
	}
}

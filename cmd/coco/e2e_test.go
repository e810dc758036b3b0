package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

func startSandbox(t *testing.T, ws string) *runningSandbox {
	t.Helper()
	cmd := exec.Command(cocoBin, "sandbox", "--workspace", ws, "--port", "0")
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
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			sb.t.Fatal(err)
		}
		return b
	}
	c, err := client.New(client.Config{
		Address:        sb.manifest.Nodes[0].RPCAddress,
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

// TestKill9UnderLoadLosesNoCommittedWrite is the crash test: 32 clients
// write with ?wait=commit, the node is killed with SIGKILL, and after a
// restart every write that was answered Committed is still there.
func TestKill9UnderLoadLosesNoCommittedWrite(t *testing.T) {
	ws := t.TempDir()
	sb := startSandbox(t, ws)
	c := sb.client()
	const clients, killAfter = 32, 1500
	var (
		mu        sync.Mutex
		committed = map[uint64]ids.TxID{}
		reached   = make(chan struct{})
		once      sync.Once
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ctx.Err() == nil && i < 100_000; i++ {
				id := uint64(w)<<32 | i
				txid, err := c.LogWrite(ctx, client.Private, id, fmt.Sprintf("msg-%d", id), client.WriteOptions{WaitCommit: true})
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				committed[id] = txid
				if len(committed) >= killAfter {
					once.Do(func() { close(reached) })
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
	if err := syscall.Kill(sb.manifest.Nodes[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	cancel()
	if err := <-sb.exited; err == nil {
		t.Fatal("sandbox exited cleanly after its node was killed")
	}
	sb.cmd = nil
	mu.Lock()
	acked := committed
	mu.Unlock()
	var maxSeqno ids.Seqno
	for _, txid := range acked {
		maxSeqno = max(maxSeqno, txid.Seqno)
	}

	// The ledger as the crash left it, torn tail and all, must audit (the
	// audit reads the tail too; a torn tail is what restart truncates).
	sb2 := startSandbox(t, ws)
	c2 := sb2.client()
	ctx2 := context.Background()
	for id, txid := range acked {
		got, err := c2.LogRead(ctx2, client.Private, id)
		if err != nil || got != fmt.Sprintf("msg-%d", id) {
			t.Fatalf("write %d (%s) answered Committed before the crash, after restart: %q, %v", id, txid, got, err)
		}
		if st, err := c2.TxStatus(ctx2, txid); err != nil || st != client.StatusCommitted {
			t.Fatalf("%s is %s after restart (%v)", txid, st, err)
		}
	}
	next, err := c2.LogWrite(ctx2, client.Private, 1<<62, "after the crash", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	if next.Seqno <= maxSeqno {
		t.Fatalf("seqnos did not continue: %s after %d", next, maxSeqno)
	}
	if err := sb2.stop(); err != nil {
		t.Fatal(err)
	}
	out, err := coco(t, "ledger", "verify", sb2.manifest.Nodes[0].LedgerDir, "--service-cert", sb2.manifest.ServiceCert)
	if err != nil {
		t.Fatalf("ledger verify after crash and restart: %v\n%s", err, out)
	}
	t.Logf("%d writes committed before kill -9, all present after restart; %s", len(acked), strings.TrimSpace(out))
}

package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/node"
	"github.com/cocoledger/coco/internal/sandbox"
	"github.com/cocoledger/coco/internal/vfs"
)

// service is one node serving on loopback with real TLS and real files.
type service struct {
	t      *testing.T
	dir    string
	cfg    *node.Config
	node   *node.Node
	addr   string
	svcPEM []byte
	done   chan error
}

func newConfig(t testing.TB, dir string, extra string) *node.Config {
	t.Helper()
	for _, name := range []string{"member0", "user0", "stranger"} {
		if _, err := os.Stat(filepath.Join(dir, name+"_cert.pem")); err == nil {
			continue
		}
		if _, _, err := sandbox.Keygen(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	raw := `
name = "test"
[network]
rpc_address = "127.0.0.1:0"
[storage]
ledger_dir = "ledger"
data_dir = "data"
[service]
cert_file = "service_cert.pem"
[start]
members = [{ cert_file = "member0_cert.pem" }]
` + extra
	cfg, err := node.ParseConfig([]byte(raw), dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, dir string, cfg *node.Config) *service {
	t.Helper()
	return startOn(t, dir, cfg, nil)
}

// startOn starts a node on the given file system (nil: the real one).
func startOn(t *testing.T, dir string, cfg *node.Config, fsys vfs.FS) *service {
	t.Helper()
	return startWith(t, dir, cfg, node.Options{FS: fsys, Logger: slog.New(slog.DiscardHandler)})
}

// startWith opens a node with the given options and serves it on a fresh
// 127.0.0.1 port; dir holds the identities its clients use.
func startWith(t *testing.T, dir string, cfg *node.Config, opts node.Options) *service {
	t.Helper()
	n, err := node.Open(cfg, opts)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	s := serve(t, dir, cfg, n)
	s.openService()
	return s
}

// member returns the member identity name in s.dir.
func (s *service) member(name string) *client.Member {
	s.t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(s.dir, name+"_cert.pem"))
	if err != nil {
		s.t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.dir, name+"_privk.pem"))
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := client.ParseMember(certPEM, keyPEM)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// openService governs a new service as its one member, member0, would:
// it acknowledges its membership, then proposes and accepts user0 as a
// user, the opening of the service, and the extra actions. A service that
// is already open (a restarted node) is left alone.
func (s *service) openService(extra ...client.Action) {
	s.t.Helper()
	ctx := context.Background()
	mc := s.client("member0")
	svc, err := mc.Service(ctx)
	if err != nil {
		s.t.Fatalf("GET /gov/service: %v", err)
	}
	if svc.Status != "Opening" {
		return
	}
	m := s.member("member0")
	if err := mc.Ack(ctx, m); err != nil {
		s.t.Fatalf("member0 ack: %v", err)
	}
	userPEM, err := os.ReadFile(filepath.Join(s.dir, "user0_cert.pem"))
	if err != nil {
		s.t.Fatal(err)
	}
	actions := append([]client.Action{
		{Name: "set_user", Args: map[string]string{"cert": string(userPEM)}},
		{Name: "transition_service_to_open", Args: map[string]any{}},
	}, extra...)
	p, err := mc.ProposeActions(ctx, m, actions...)
	if err != nil {
		s.t.Fatalf("propose opening: %v", err)
	}
	if p, err = mc.Vote(ctx, m, p.ProposalID, true); err != nil || p.State != "Accepted" {
		s.t.Fatalf("vote opening: %+v, %v", p, err)
	}
}

// serve serves an opened node on a fresh 127.0.0.1 port until the test
// ends; dir holds the identities its clients use.
func serve(t *testing.T, dir string, cfg *node.Config, n *node.Node) *service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, dir: dir, cfg: cfg, node: n, addr: ln.Addr().String(), svcPEM: crypto.CertPEM(n.ServiceCert()), done: make(chan error, 1)}
	go func() { s.done <- n.Serve(ln) }()
	t.Cleanup(s.stop)
	return s
}

func (s *service) stop() {
	if s.node == nil {
		return
	}
	if err := s.node.Close(); err != nil {
		s.t.Errorf("close: %v", err)
	}
	if err := <-s.done; err != nil {
		s.t.Errorf("serve: %v", err)
	}
	s.node = nil
}

func (s *service) client(name string) *client.Client {
	s.t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(s.dir, p))
		if err != nil {
			s.t.Fatal(err)
		}
		return b
	}
	cfg := client.Config{Address: s.addr, ServiceCertPEM: s.svcPEM}
	if name != "" {
		cfg.CertPEM, cfg.KeyPEM = read(name+"_cert.pem"), read(name+"_privk.pem")
	}
	c, err := client.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestEndToEndWriteReadCommitReceipt(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, newConfig(t, dir, ""))
	ctx := context.Background()
	user := s.client("user0")

	privID, err := user.LogWrite(ctx, client.Private, 7, "private hello", client.WriteOptions{RecordClaim: true, WaitCommit: true})
	if err != nil {
		t.Fatalf("private write: %v", err)
	}
	pubID, err := user.LogWrite(ctx, client.Public, 7, "public hello", client.WriteOptions{})
	if err != nil {
		t.Fatalf("public write: %v", err)
	}
	if pubID.Seqno <= privID.Seqno || pubID.View != privID.View {
		t.Fatalf("txids not increasing in one view: %s then %s", privID, pubID)
	}
	if err := user.WaitCommitted(ctx, pubID); err != nil {
		t.Fatal(err)
	}
	for scope, want := range map[client.Scope]string{client.Private: "private hello", client.Public: "public hello"} {
		got, err := user.LogRead(ctx, scope, 7)
		if err != nil || got != want {
			t.Fatalf("read %s = %q, %v; want %q", scope, got, err, want)
		}
	}
	if st, err := user.TxStatus(ctx, privID); err != nil || st != client.StatusCommitted {
		t.Fatalf("status of %s = %s, %v", privID, st, err)
	}
	commit, err := user.Commit(ctx)
	if err != nil || commit.Seqno < pubID.Seqno {
		t.Fatalf("commit = %s, %v; want at or after %s", commit, err, pubID)
	}

	r, err := user.Receipt(ctx, privID)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if r.TransactionID != privID.String() {
		t.Fatalf("receipt names %s, want %s", r.TransactionID, privID)
	}
	wantClaims := sha256.Sum256([]byte("private hello"))
	if r.LeafComponents.ClaimsDigest != hex.EncodeToString(wantClaims[:]) {
		t.Fatalf("claims digest %s, want SHA-256 of the message", r.LeafComponents.ClaimsDigest)
	}
	svc := s.node.ServiceCert()
	if err := r.Verify(svc); err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	// One flipped byte in the proof (the tail of the COSE message holds the
	// inclusion path) must break verification.
	for _, off := range []int{1, 2, 5, 17} {
		bad := *r
		bad.COSEReceipt = bytes.Clone(r.COSEReceipt)
		bad.COSEReceipt[len(bad.COSEReceipt)-off] ^= 0x01
		if err := bad.Verify(svc); err == nil {
			t.Fatalf("receipt with byte -%d flipped still verifies", off)
		}
	}
	// The public write's receipt has an all-zero claims digest.
	rp, err := user.Receipt(ctx, pubID)
	if err != nil {
		t.Fatal(err)
	}
	if rp.LeafComponents.ClaimsDigest != strings.Repeat("0", 64) {
		t.Fatalf("public write without claim has claims digest %s", rp.LeafComponents.ClaimsDigest)
	}
	if err := rp.Verify(svc); err != nil {
		t.Fatal(err)
	}
}

func TestPrivatePlaintextNeverInLedger(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, newConfig(t, dir, ""))
	ctx := context.Background()
	user := s.client("user0")
	const secret, public = "TOP-SECRET-4f1e9c", "PUBLIC-NOTICE-83ab2d"
	for i := range 20 {
		if _, err := user.LogWrite(ctx, client.Private, uint64(i), fmt.Sprintf("%s-%d", secret, i), client.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := user.LogWrite(ctx, client.Public, 1, public, client.WriteOptions{WaitCommit: true}); err != nil {
		t.Fatal(err)
	}
	s.stop()
	var all []byte
	files, err := filepath.Glob(filepath.Join(s.cfg.Storage.LedgerDir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ledger files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if bytes.Contains(all, []byte(secret)) || bytes.Contains(all, []byte("TOP-SECRET")) {
		t.Fatal("private plaintext found in the ledger")
	}
	if !bytes.Contains(all, []byte(public)) {
		t.Fatal("public message not found in clear in the ledger")
	}
}

func TestRestartKeepsStateAndContinuesSeqnos(t *testing.T) {
	dir := t.TempDir()
	cfg := newConfig(t, dir, "")
	s := start(t, dir, cfg)
	ctx := context.Background()
	var written []ids.TxID
	for i := range 10 {
		id, err := s.client("user0").LogWrite(ctx, client.Private, uint64(i), fmt.Sprint("m", i), client.WriteOptions{WaitCommit: i == 9})
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, id)
	}
	view1 := s.node.View()
	s.stop()

	s2 := start(t, dir, cfg)
	if s2.node.View() <= view1 {
		t.Fatalf("view after restart %d, want > %d", s2.node.View(), view1)
	}
	user := s2.client("user0")
	for i, id := range written {
		got, err := user.LogRead(ctx, client.Private, uint64(i))
		if err != nil || got != fmt.Sprint("m", i) {
			t.Fatalf("after restart read %d = %q, %v", i, got, err)
		}
		if st, err := user.TxStatus(ctx, id); err != nil || st != client.StatusCommitted {
			t.Fatalf("after restart %s is %s, %v", id, st, err)
		}
	}
	next, err := user.LogWrite(ctx, client.Private, 100, "after", client.WriteOptions{WaitCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	if next.Seqno <= written[len(written)-1].Seqno || next.View != s2.node.View() {
		t.Fatalf("first write after restart is %s, want a later seqno in view %d", next, s2.node.View())
	}
	// A txid of the old view beyond the ledger's end can never happen now.
	ghost := ids.TxID{View: view1, Seqno: next.Seqno + 5}
	if st, err := user.TxStatus(ctx, ghost); err != nil || st != client.StatusInvalid {
		t.Fatalf("status of %s = %s, %v; want Invalid", ghost, st, err)
	}
	if st, err := user.TxStatus(ctx, ids.TxID{View: s2.node.View(), Seqno: next.Seqno + 5}); err != nil || st != client.StatusUnknown {
		t.Fatalf("future txid status %s, %v; want Unknown", st, err)
	}
	r, err := user.Receipt(ctx, written[3])
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(s2.node.ServiceCert()); err != nil {
		t.Fatalf("receipt of a pre-restart tx: %v", err)
	}
	s2.stop()
	rep, err := audit.Verify(vfs.OS(), cfg.Storage.LedgerDir, nil)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if rep.LastSigned.Seqno < next.Seqno {
		t.Fatalf("last signed %s, want at or after %s", rep.LastSigned, next)
	}
}

// rawRequest sends a request with arbitrary bytes over real TLS and
// returns the status and the error code of the answer.
func rawRequest(t *testing.T, s *service, who, method, path, body string) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.serviceCert())
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if who != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(s.dir, who+"_cert.pem"), filepath.Join(s.dir, who+"_privk.pem"))
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "https://"+s.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Message == "" {
			t.Fatalf("%s %s: error answer is not {error:{code,message}}: %s", method, path, raw)
		}
	}
	return resp.StatusCode, e.Error.Code
}

func TestBadInputIsRefusedAndNothingStored(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, newConfig(t, dir, "[http]\nmax_body_bytes = 4096\n"))
	cases := []struct {
		name, who, method, path, body string
		status                        int
		code                          string
	}{
		{"unknown field", "user0", "POST", "/app/log/private", `{"id":1,"msg":"x","extra":1}`, 400, "InvalidInput"},
		{"missing msg", "user0", "POST", "/app/log/private", `{"id":1}`, 400, "InvalidInput"},
		{"id not a number", "user0", "POST", "/app/log/private", `{"id":"1","msg":"x"}`, 400, "InvalidInput"},
		{"negative id", "user0", "POST", "/app/log/private", `{"id":-1,"msg":"x"}`, 400, "InvalidInput"},
		{"trailing data", "user0", "POST", "/app/log/public", `{"id":1,"msg":"x"} {}`, 400, "InvalidInput"},
		{"oversized", "user0", "POST", "/app/log/private", `{"id":1,"msg":"` + strings.Repeat("a", 5000) + `"}`, 413, "PayloadTooLarge"},
		{"bad wait", "user0", "POST", "/app/log/private?wait=forever", `{"id":1,"msg":"x"}`, 400, "InvalidInput"},
		{"bad txid", "user0", "GET", "/node/tx?transaction_id=1.x", "", 400, "InvalidTransactionId"},
		{"missing txid", "user0", "GET", "/app/receipt", "", 400, "InvalidTransactionId"},
		{"read missing", "user0", "GET", "/app/log/private?id=99", "", 404, "ResourceNotFound"},
		{"read bad id", "user0", "GET", "/app/log/private?id=abc", "", 400, "InvalidInput"},
		{"no cert", "", "POST", "/app/log/private", `{"id":1,"msg":"x"}`, 401, "MissingClientCertificate"},
		{"unknown cert", "stranger", "POST", "/app/log/private", `{"id":1,"msg":"x"}`, 401, "UnknownCaller"},
		{"member on user endpoint", "member0", "POST", "/app/log/private", `{"id":1,"msg":"x"}`, 403, "Forbidden"},
		{"no such endpoint", "user0", "GET", "/app/nothing", "", 404, "ResourceNotFound"},
		{"wrong method", "user0", "DELETE", "/app/log/private", "", 405, "MethodNotAllowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, code := rawRequest(t, s, tc.who, tc.method, tc.path, tc.body)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d %s, want %d %s", status, code, tc.status, tc.code)
			}
		})
	}
	// Nothing of the refused writes was stored.
	if _, err := s.client("user0").LogRead(context.Background(), client.Private, 1); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("refused write left a record: %v", err)
	}
}

func TestLedgerTamperIsFoundAndLocated(t *testing.T) {
	dir := t.TempDir()
	cfg := newConfig(t, dir, "[ledger]\nchunk_size = 2048\n")
	s := start(t, dir, cfg)
	user := s.client("user0")
	for i := range 60 {
		if _, err := user.LogWrite(context.Background(), client.Public, uint64(i), strings.Repeat("p", 40), client.WriteOptions{WaitCommit: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.stop()
	chunks, _ := filepath.Glob(filepath.Join(cfg.Storage.LedgerDir, "*.committed"))
	if len(chunks) < 2 {
		t.Fatalf("want several committed chunks, got %v", chunks)
	}
	if _, err := audit.Verify(vfs.OS(), cfg.Storage.LedgerDir, s.serviceCert()); err != nil {
		t.Fatalf("untouched ledger fails audit: %v", err)
	}
	victim := chunks[1]
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{0, 3, 10, len(orig) / 2, len(orig) - 1} {
		bad := bytes.Clone(orig)
		bad[off] ^= 0x40
		if err := os.WriteFile(victim, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := audit.Verify(vfs.OS(), cfg.Storage.LedgerDir, s.serviceCert())
		var aerr *audit.Error
		if !errors.As(err, &aerr) {
			t.Fatalf("flip at %d: audit = %v, want *audit.Error", off, err)
		}
		if filepath.Base(aerr.File) != filepath.Base(victim) || aerr.Offset > int64(off) {
			t.Fatalf("flip at %d reported at %s offset %d", off, aerr.File, aerr.Offset)
		}
	}
	if err := os.WriteFile(victim, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	// A ledger of another service does not verify against this one's cert.
	other, _ := crypto.GenerateKey(nil)
	otherCert, _ := crypto.SelfSign(nil, other, crypto.CertOptions{CommonName: "other", IsCA: true})
	if _, err := audit.Verify(vfs.OS(), cfg.Storage.LedgerDir, otherCert); !errors.Is(err, audit.ErrAudit) {
		t.Fatalf("audit against a foreign service cert: %v", err)
	}
}

func (s *service) serviceCert() *x509.Certificate {
	c, err := crypto.ParseCertPEM(s.svcPEM)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// TestSignatureIntervals: with signatures every N ms or every K entries
// (instead of every batch), unwaited writes still become Committed, by the
// timer or by the count.
func TestSignatureIntervals(t *testing.T) {
	for name, extra := range map[string]string{
		"by time":  "[ledger]\nsignature_interval_ms = 30\nsignature_interval_txs = 100000\n",
		"by count": "[ledger]\nsignature_interval_ms = 60000\nsignature_interval_txs = 5\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, dir, newConfig(t, dir, extra))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			user := s.client("user0")
			// Any 5 consecutive transactions include a signature at or
			// after the first of them (by count; by time, within 30 ms),
			// whatever governance wrote before: of 10 writes, the first 6
			// must commit.
			var written []ids.TxID
			for i := range 10 {
				id, err := user.LogWrite(ctx, client.Public, uint64(i), "x", client.WriteOptions{})
				if err != nil {
					t.Fatal(err)
				}
				written = append(written, id)
			}
			for _, id := range written[:6] {
				if err := user.WaitCommitted(ctx, id); err != nil {
					t.Fatalf("%s never committed: %v", id, err)
				}
			}
			if _, err := user.Receipt(ctx, written[5]); err != nil {
				t.Fatalf("receipt: %v", err)
			}
		})
	}
}

// TestGovernanceConstitutionLimits: a constitution whose resolve never
// returns is stopped by the time limit; the proposal it was deciding is
// Failed with the reason, and the node keeps serving.
func TestGovernanceConstitutionLimits(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, newConfig(t, dir, ""))
	ctx := context.Background()
	mc, m := s.client("member0"), s.member("member0")
	looping := `export function validate(input) { return { valid: true, description: "" }; }
export function resolve(proposal, proposerId, votes) { for (;;) {} }
export function apply(proposal, proposalId) {}
`
	p, err := mc.ProposeActions(ctx, m, client.Action{Name: "set_constitution", Args: map[string]string{"constitution": looping}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = mc.Vote(ctx, m, p.ProposalID, true); err != nil || p.State != "Accepted" {
		t.Fatalf("set_constitution: %+v, %v", p, err)
	}
	p, err = mc.ProposeActions(ctx, m, client.Action{Name: "transition_service_to_open", Args: map[string]any{}})
	if err != nil {
		t.Fatalf("propose under a looping constitution: %v", err)
	}
	if p.State != "Failed" || !strings.Contains(p.Failure, "resolve") || !strings.Contains(p.Failure, "time limit") {
		t.Fatalf("proposal under a looping resolve: %+v; want Failed by the time limit", p)
	}
	if _, err := s.client("user0").LogWrite(ctx, client.Private, 1, "still serving", client.WriteOptions{WaitCommit: true}); err != nil {
		t.Fatalf("write after the limit stopped resolve: %v", err)
	}
	got, err := mc.GovProposal(ctx, p.ProposalID)
	if err != nil || got.State != "Failed" {
		t.Fatalf("the failed proposal as recorded: %+v, %v", got, err)
	}
}

// TestOpenAPIListsGovernanceWithPathParameters: GET /node/api describes
// every endpoint, a templated path with its parameters.
func TestOpenAPIListsGovernanceWithPathParameters(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, newConfig(t, dir, ""))
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name     string `json:"name"`
				In       string `json:"in"`
				Required bool   `json:"required"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if _, err := s.client("").Do(context.Background(), "GET", "/node/api", nil, &doc); err != nil {
		t.Fatal(err)
	}
	vote := doc.Paths["/gov/proposals/{proposal_id}/ballots"]["post"]
	if len(vote.Parameters) != 1 || vote.Parameters[0].Name != "proposal_id" || vote.Parameters[0].In != "path" || !vote.Parameters[0].Required {
		t.Fatalf("POST /gov/proposals/{proposal_id}/ballots: %+v", vote)
	}
	for _, p := range []string{"/gov/proposals", "/gov/members/ack", "/gov/service", "/app/log/private"} {
		if len(doc.Paths[p]) == 0 {
			t.Errorf("%s is not described", p)
		}
	}
	if len(doc.Paths["/gov/proposals"]["get"].Parameters) != 0 {
		t.Error("an exact path got parameters")
	}
}

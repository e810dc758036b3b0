package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
)

// userIdentity returns a self-signed ECDSA P-256 client certificate and its
// PKCS#8 key, both PEM, as `coco keygen` makes them.
func userIdentity(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "user0"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", p8)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// fakeNode is an in-memory logging app that records what the bench sends.
type fakeNode struct {
	t       *testing.T
	size    int
	ids     *sync.Map // id → struct{}: shared by the nodes of one network
	seq     *seqnos
	mu      sync.Mutex
	writes  int
	waits   int // writes that asked ?wait=commit
	conns   int // TLS connections accepted
	proto   int // HTTP major version of the last request
	failIf  func(n int) (status int, body string)
	onWrite func(n int)
	txState func(tx ids.TxID, poll int) client.TxStatus
	polls   map[ids.TxID]int
}

// seqnos hands out one network's TxIDs.
type seqnos struct {
	mu sync.Mutex
	n  ids.Seqno
}

func (s *seqnos) next() ids.TxID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return ids.TxID{View: 3, Seqno: s.n}
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.TLS.PeerCertificates) == 0 {
		http.Error(w, "want a client certificate", 400)
		return
	}
	f.mu.Lock()
	f.proto = r.ProtoMajor
	f.mu.Unlock()
	switch {
	case r.Method == "GET" && r.URL.Path == "/node/ready":
	case r.Method == "POST" && r.URL.Path == "/app/log/private":
		f.write(w, r)
	case r.Method == "GET" && r.URL.Path == "/node/tx":
		tx, err := ids.ParseTxID(r.URL.Query().Get("transaction_id"))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		f.polls[tx]++
		st := f.txState(tx, f.polls[tx])
		f.mu.Unlock()
		fmt.Fprintf(w, `{"transaction_id":%q,"status":%q}`, tx, st)
	default:
		http.Error(w, "no such endpoint "+r.URL.Path, 404)
	}
}

func (f *fakeNode) write(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID  uint64 `json:"id"`
		Msg string `json:"msg"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if _, dup := f.ids.LoadOrStore(body.ID, struct{}{}); dup {
		f.t.Errorf("id %d written twice", body.ID)
	}
	if len(body.Msg) != f.size {
		f.t.Errorf("message of %d bytes, want %d", len(body.Msg), f.size)
	}
	f.mu.Lock()
	f.writes++
	n := f.writes
	if r.URL.RawQuery == "wait=commit" {
		f.waits++
	}
	f.mu.Unlock()
	if f.onWrite != nil {
		f.onWrite(n)
	}
	if f.failIf != nil {
		if status, msg := f.failIf(n); status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, msg)
			return
		}
	}
	tx := f.seq.next()
	w.Header().Set("x-coco-txid", tx.String())
	fmt.Fprintf(w, `{"transaction_id":%q}`, tx)
}

// network starts n fake nodes sharing one TLS certificate, which the bench
// pins as the service certificate.
func network(t *testing.T, n, size int, edit func(*fakeNode)) ([]*fakeNode, Config) {
	t.Helper()
	certPEM, keyPEM := userIdentity(t)
	var cfg Config
	var nodes []*fakeNode
	shared, seq := &sync.Map{}, &seqnos{}
	for range n {
		f := &fakeNode{t: t, size: size, ids: shared, seq: seq, polls: map[ids.TxID]int{},
			txState: func(ids.TxID, int) client.TxStatus { return client.StatusCommitted }}
		if edit != nil {
			edit(f)
		}
		srv := httptest.NewUnstartedServer(f)
		srv.EnableHTTP2 = true
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				f.mu.Lock()
				f.conns++
				f.mu.Unlock()
			}
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		cfg.Nodes = append(cfg.Nodes, srv.Listener.Addr().String())
		cfg.ServiceCertPEM = pemBlock("CERTIFICATE", srv.Certificate().Raw)
		nodes = append(nodes, f)
	}
	cfg.CertPEM, cfg.KeyPEM = certPEM, keyPEM
	cfg.Clients, cfg.Duration, cfg.Warmup, cfg.Size = 6, 400*time.Millisecond, 100*time.Millisecond, size
	cfg.Scope, cfg.Wait, cfg.HTTP2, cfg.ClientsPerConn = client.Private, WaitCommit, true, 2
	return nodes, cfg
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunWaitCommitSpreadsOverNodesAndConnections(t *testing.T) {
	nodes, cfg := network(t, 2, 100, nil)
	began := time.Now()
	res, err := Run(bg(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < cfg.Duration || took > cfg.Duration+drainGrace {
		t.Errorf("run took %v for a %v duration", took, cfg.Duration)
	}
	if res.Executed == 0 || res.Committed != res.Executed || len(res.Errors) != 0 {
		t.Fatalf("result %+v", res)
	}
	if want := float64(res.Executed) / 0.3; res.ExecutedTxPerS != want || res.CommittedTxPerS != want {
		t.Errorf("tx/s %v, %v; want %v over the 0.3 s window", res.ExecutedTxPerS, res.CommittedTxPerS, want)
	}
	if !(0 < res.P50Ms && res.P50Ms <= res.P90Ms && res.P90Ms <= res.P99Ms && res.P99Ms <= res.MaxMs) {
		t.Errorf("latencies p50 %v p90 %v p99 %v max %v", res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs)
	}
	// 6 clients over 2 nodes is 3 per node; 2 per connection makes 2
	// connections per node.
	if res.Connections != 4 || res.Clients != 6 || res.Nodes != 2 || res.Size != 100 || res.DurationS != 0.3 || res.WarmupS != 0.1 {
		t.Errorf("result header %+v", res)
	}
	var total uint64
	for i, f := range nodes {
		f.mu.Lock()
		if f.conns != 2 || f.writes == 0 || f.waits != f.writes {
			t.Errorf("node %d: %d connections, %d writes, %d with wait=commit", i, f.conns, f.writes, f.waits)
		}
		total += uint64(f.writes)
		f.mu.Unlock()
	}
	if total < res.Executed {
		t.Errorf("nodes saw %d writes, bench counted %d", total, res.Executed)
	}
	if res.Protocol != "HTTP/2" || nodes[0].proto != 2 {
		t.Errorf("protocol %q, node saw HTTP/%d; want HTTP/2", res.Protocol, nodes[0].proto)
	}
}

// Without HTTP2 every client has its own HTTP/1.1 connection.
func TestRunHTTP1ConnectionPerClient(t *testing.T) {
	nodes, cfg := network(t, 2, 10, nil)
	cfg.HTTP2 = false
	res, err := Run(bg(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Executed == 0 || len(res.Errors) != 0 || res.Connections != 6 || res.Protocol != "HTTP/1.1" {
		t.Fatalf("result %+v", res)
	}
	for i, f := range nodes {
		f.mu.Lock()
		if f.conns != 3 || f.proto != 1 {
			t.Errorf("node %d: %d connections over HTTP/%d; want 3 over HTTP/1", i, f.conns, f.proto)
		}
		f.mu.Unlock()
	}
}

func TestRunWaitNoneCountsCommittedAfterTheEnd(t *testing.T) {
	nodes, cfg := network(t, 1, 0, func(f *fakeNode) {
		// Pending for two polls, as if the last batch were still in flight.
		f.txState = func(_ ids.TxID, poll int) client.TxStatus {
			if poll < 3 {
				return client.StatusPending
			}
			return client.StatusCommitted
		}
	})
	cfg.Wait = WaitNone
	res, err := Run(bg(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Executed == 0 || res.Committed != res.Executed || res.CommitWaitError != "" || res.LastTxID == "" {
		t.Fatalf("result %+v", res)
	}
	f := nodes[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waits != 0 {
		t.Errorf("%d writes asked to wait for commit", f.waits)
	}
	last, _ := ids.ParseTxID(res.LastTxID)
	if len(f.polls) != 1 || f.polls[last] != 3 {
		t.Errorf("polled %v; want only the last tx %s, 3 times", f.polls, last)
	}
}

func TestRunWaitNoneInvalidIsNotCommitted(t *testing.T) {
	_, cfg := network(t, 1, 10, func(f *fakeNode) {
		f.txState = func(ids.TxID, int) client.TxStatus { return client.StatusInvalid }
	})
	cfg.Wait = WaitNone
	res, err := Run(bg(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Executed == 0 || res.Committed != 0 || res.CommittedTxPerS != 0 || !strings.Contains(res.CommitWaitError, "invalid") {
		t.Fatalf("result %+v", res)
	}
}

func TestRunCountsErrorsByCode(t *testing.T) {
	_, cfg := network(t, 1, 1, func(f *fakeNode) {
		f.failIf = func(n int) (int, string) {
			switch n % 4 {
			case 1:
				return 503, `{"error":{"code":"NotPrimary","message":"try node 2"}}`
			case 2:
				return 500, "boom"
			}
			return 0, ""
		}
	})
	res, err := Run(bg(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["NotPrimary"] == 0 || res.Errors["HTTP500"] == 0 || len(res.Errors) != 2 || res.Executed == 0 {
		t.Fatalf("errors %v, executed %d", res.Errors, res.Executed)
	}
	if !strings.Contains(res.ErrorExamples["NotPrimary"], "try node 2") || !strings.Contains(res.ErrorExamples["HTTP500"], "boom") {
		t.Errorf("examples %v", res.ErrorExamples)
	}
	var out strings.Builder
	if err := res.WriteText(&out); err != nil || !strings.Contains(out.String(), "NotPrimary") {
		t.Errorf("text report %q (%v)", out.String(), err)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(bg(t))
	_, cfg := network(t, 1, 1, func(f *fakeNode) {
		f.onWrite = func(n int) {
			if n == 10 {
				cancel()
			}
		}
	})
	cfg.Duration = time.Minute
	began := time.Now()
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("cancelled run took %v", took)
	}
}

func TestRunRefusesUnreachableNode(t *testing.T) {
	_, cfg := network(t, 1, 1, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	cfg.Nodes = append(cfg.Nodes, dead)
	if _, err := Run(bg(t), cfg); err == nil || !strings.Contains(err.Error(), dead+" is not ready") {
		t.Fatalf("Run with a dead node: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, ok := network(t, 1, 1, nil)
	for name, edit := range map[string]func(*Config){
		"no nodes":        func(c *Config) { c.Nodes = nil },
		"no clients":      func(c *Config) { c.Clients = 0 },
		"no duration":     func(c *Config) { c.Duration = 0 },
		"long warm-up":    func(c *Config) { c.Warmup = c.Duration },
		"negative size":   func(c *Config) { c.Size = -1 },
		"bad scope":       func(c *Config) { c.Scope = "secret" },
		"bad wait":        func(c *Config) { c.Wait = "maybe" },
		"negative conns":  func(c *Config) { c.ClientsPerConn = -1 },
		"negative commit": func(c *Config) { c.CommitTimeout = -1 },
	} {
		cfg := ok
		edit(&cfg)
		if _, err := Run(bg(t), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := ok
	cfg.KeyPEM = nil
	if _, err := Run(bg(t), cfg); !errors.Is(err, client.ErrConfig) {
		t.Errorf("missing key: %v", err)
	}
}

func TestPayloadIsExactAndNeedsNoEscaping(t *testing.T) {
	for _, n := range []int{0, 1, 36, 100, 4096} {
		p := payload(n)
		j, _ := json.Marshal(p)
		if len(p) != n || len(j) != n+2 {
			t.Errorf("payload(%d) has %d bytes, %d as JSON", n, len(p), len(j))
		}
	}
}

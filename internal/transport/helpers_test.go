package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/crypto"
)

// service is a service identity that endorses node certificates.
type service struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newService(t testing.TB) *service {
	t.Helper()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := crypto.SelfSign(nil, key, crypto.CertOptions{CommonName: "test service", IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	return &service{key: key, cert: cert}
}

// identity is a node key with its certificate and raft id.
type identity struct {
	id   uint64
	cert tls.Certificate
}

var nodeCertOpts = crypto.CertOptions{CommonName: "test node", Server: true, Client: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}

// endorse makes a node identity endorsed by the service.
func (s *service) endorse(t testing.TB) identity {
	t.Helper()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := crypto.Endorse(nil, key.Public(), s.key, s.cert, nodeCertOpts)
	if err != nil {
		t.Fatal(err)
	}
	return makeIdentity(t, key, cert)
}

// selfSigned makes a node identity nobody endorsed.
func selfSigned(t testing.TB) identity {
	t.Helper()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := crypto.SelfSign(nil, key, nodeCertOpts)
	if err != nil {
		t.Fatal(err)
	}
	return makeIdentity(t, key, cert)
}

func makeIdentity(t testing.TB, key *ecdsa.PrivateKey, cert *x509.Certificate) identity {
	t.Helper()
	id, err := RaftIDOf(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return identity{id: id, cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// inbox collects what a Handler receives.
type inbox struct {
	ch chan raftpb.Message
}

func newInbox(n int) *inbox { return &inbox{ch: make(chan raftpb.Message, n)} }

func (b *inbox) handle(_ context.Context, msgs []raftpb.Message) {
	for _, m := range msgs {
		b.ch <- m
	}
}

// next waits (bounded) for the next message.
func (b *inbox) next(t testing.TB) raftpb.Message {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return raftpb.Message{}
	}
}

// none checks that nothing was received.
func (b *inbox) none(t testing.TB) {
	t.Helper()
	select {
	case m := <-b.ch:
		t.Fatalf("unexpected message %v", m)
	default:
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// node is a TLS transport under test.
type node struct {
	identity
	tr   *TLS
	in   *inbox
	logs *logBuffer
	addr string
}

func startNode(t testing.TB, svc *service, id identity, queueLen int) *node {
	t.Helper()
	return startForwardNode(t, svc, id, queueLen, nil)
}

// startForwardNode starts a node that executes forwarded requests with fh.
func startForwardNode(t testing.TB, svc *service, id identity, queueLen int, fh ForwardHandler) *node {
	t.Helper()
	return startNodeConfig(t, svc, id, func(c *TLSConfig) { c.QueueLen, c.Forward = queueLen, fh })
}

// startNodeConfig starts a node whose configuration mod adjusts.
func startNodeConfig(t testing.TB, svc *service, id identity, mod func(*TLSConfig)) *node {
	t.Helper()
	n := &node{identity: id, in: newInbox(1 << 16), logs: &logBuffer{}}
	ln := listen(t)
	cfg := TLSConfig{
		LocalID: id.id, Listener: ln, Cert: id.cert, ServiceCert: svc.cert,
		Handler: n.in.handle, Logger: n.logs.logger(),
	}
	mod(&cfg)
	tr, err := NewTLS(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	n.tr, n.addr = tr, ln.Addr().String()
	t.Cleanup(func() { tr.Close() })
	return n
}

func (n *node) peer() Peer { return Peer{ID: n.id, Address: n.addr} }

// admit makes ids n's peers (replacing its peer set), at an address where
// nobody listens: n accepts their requests, and sends nothing unless told.
func (n *node) admit(ids ...identity) {
	peers := make([]Peer, len(ids))
	for i, id := range ids {
		peers[i] = Peer{ID: id.id, Address: "127.0.0.1:1"}
	}
	n.tr.SetPeers(peers)
}

// eventually polls cond until it holds, at most 10 s, on a ticker channel.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func heartbeat(from, to uint64, term uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: term}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

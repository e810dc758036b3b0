package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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

// frameClient plays a node that does not follow the protocol: it dials
// with an identity's certificate, trusts any server, and writes and reads
// raw frames.
type frameClient struct {
	t  testing.TB
	tc *tls.Conn
	fr *frameReader
}

// dialFrames connects to addr as id and completes the client side of the
// TLS handshake. The server may still refuse the certificate: in TLS 1.3
// the client learns it at its first read (see hello).
func dialFrames(t testing.TB, id identity, addr string, protos ...string) (*frameClient, error) {
	t.Helper()
	if protos == nil {
		protos = []string{alpnProtocol}
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: protos,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &id.cert, nil },
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { tc.Close() })
	return &frameClient{t: t, tc: tc, fr: newFrameReader(tc)}, nil
}

// connectFrames connects to addr as id, a peer of the node there, and
// waits for its hello.
func connectFrames(t testing.TB, id identity, addr string) *frameClient {
	t.Helper()
	c, err := dialFrames(t, id, addr)
	if err == nil {
		err = c.hello()
	}
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	return c
}

// hello reads the first frame: nil for a hello, a *RefusedError for a
// goodbye, the read error otherwise.
func (c *frameClient) hello() error {
	kind, p, err := c.next()
	switch {
	case err != nil:
		return err
	case kind == frameGoodbye:
		status, text, err := parseStatusText(p)
		if err != nil {
			return err
		}
		return &RefusedError{Kind: RefusedConnection, Status: status, Message: text}
	case kind != frameHello:
		return fmt.Errorf("first frame: %v", kind)
	}
	return nil
}

// next reads a frame from the server, within 10 s.
func (c *frameClient) next() (frameKind, []byte, error) {
	c.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	kind, n, err := c.fr.next(&toSender)
	if err != nil {
		return kind, nil, err
	}
	var buf bytes.Buffer
	if err := c.fr.readPayload(&buf, int64(n)); err != nil {
		return kind, nil, err
	}
	return kind, buf.Bytes(), nil
}

// write writes raw bytes, within 10 s.
func (c *frameClient) write(b []byte) error {
	c.tc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.tc.Write(b)
	return err
}

// frame writes a frame of kind with payload.
func (c *frameClient) frame(kind frameKind, payload []byte) error {
	return c.write(append(appendFrameHead(nil, &outFrame{kind: kind, body: payload}), payload...))
}

// batch writes msgs as a batch frame.
func (c *frameClient) batch(msgs []raftpb.Message) error {
	c.t.Helper()
	b, err := AppendBatch(nil, msgs)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.frame(frameBatch, b)
}

// forward writes a forward frame: id and body.
func (c *frameClient) forward(id uint64, body []byte) error {
	f := &outFrame{kind: frameForward, id: id, body: body}
	return c.write(append(appendFrameHead(nil, f), body...))
}

// goodbye reads frames up to the server's goodbye, which must be the
// last, and returns its status and text.
func (c *frameClient) goodbye() (int, string) {
	c.t.Helper()
	for {
		kind, p, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for a goodbye: %v", err)
		}
		if kind != frameGoodbye {
			continue
		}
		status, text, err := parseStatusText(p)
		if err != nil {
			c.t.Fatal(err)
		}
		if kind, _, err := c.next(); !errors.Is(err, io.EOF) {
			c.t.Fatalf("after the goodbye: %v frame, %v; want the end of the stream", kind, err)
		}
		return status, text
	}
}

// answer reads the next frame, which must be an answer or a refusal, and
// returns its id and either the decoded answer or the refusal.
func (c *frameClient) answer() (uint64, *ForwardedResponse, *RefusedError) {
	c.t.Helper()
	kind, p, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for an answer: %v", err)
	}
	if len(p) < frameIDLen || (kind != frameAnswer && kind != frameRefusal) {
		c.t.Fatalf("%v frame of %d bytes, want an answer or a refusal", kind, len(p))
	}
	id, rest := binary.BigEndian.Uint64(p), p[frameIDLen:]
	if kind == frameRefusal {
		status, text, err := parseStatusText(rest)
		if err != nil {
			c.t.Fatal(err)
		}
		return id, nil, &RefusedError{Kind: RefusedForward, Status: status, Message: text}
	}
	resp, err := DecodeForwardedResponse(rest)
	if err != nil {
		c.t.Fatal(err)
	}
	return id, resp, nil
}

// rogueServer is a TLS server presenting id's certificate that accepts
// any client and counts the frames it is sent: a node the service did
// not endorse, or not the peer it claims to be.
func rogueServer(t testing.TB, id identity) (addr string, frames *atomic.Int32) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.cert},
		ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{alpnProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	frames = new(atomic.Int32)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.(*tls.Conn).Write(appendFrameHead(nil, &outFrame{kind: frameHello}))
				fr := newFrameReader(c)
				for {
					if _, _, err := fr.next(&toReceiver); err != nil {
						return
					}
					frames.Add(1)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), frames
}

// gate relays TCP connections to a target once opened: a test queues
// work for a connection before any of it can go through, or cuts the
// connections under the transport.
type gate struct {
	ln     net.Listener
	target string
	opened chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func newGate(t testing.TB, target string) *gate {
	t.Helper()
	g := &gate{ln: listen(t), target: target, opened: make(chan struct{})}
	g.wg.Go(g.accept)
	t.Cleanup(func() {
		g.ln.Close()
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		g.open()
		g.cut()
		g.wg.Wait()
	})
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

// open lets the connections through, those accepted so far and later ones.
func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// cut closes the connections relayed so far, both ends.
func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *gate) accept() {
	for {
		in, err := g.ln.Accept()
		if err != nil {
			return
		}
		if !g.track(in) {
			continue
		}
		g.wg.Go(func() {
			<-g.opened
			out, err := net.Dial("tcp", g.target)
			if err != nil {
				in.Close()
				return
			}
			if !g.track(out) {
				in.Close()
				return
			}
			relay := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			g.wg.Go(func() { relay(out, in) })
			relay(in, out)
		})
	}
}

// track records c for cut; after the cleanup it closes c instead.
func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.Close()
		return false
	}
	g.conns = append(g.conns, c)
	return true
}

// pendingForwards is how many forwards tr's sender to peer holds.
func pendingForwards(tr *TLS, peer uint64) int {
	tr.mu.RLock()
	s := tr.senders[peer]
	tr.mu.RUnlock()
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// slowBackoff makes senders started from now on back off for an hour
// after a failure, until the test ends: a forward that waited for the
// backoff would then time out.
func slowBackoff(t testing.TB) {
	lo, hi := backoffMin, backoffMax
	backoffMin, backoffMax = time.Hour, time.Hour
	t.Cleanup(func() { backoffMin, backoffMax = lo, hi }) // after the nodes' Close: registered before them
}

package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// rawClient is an HTTP/2 client presenting id's certificate that trusts
// any server: it plays a node that does not follow the protocol.
func rawClient(t testing.TB, id identity) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetHTTP2(true)
	rt := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{"h2"},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &id.cert, nil },
		},
		Protocols: &p, ForceAttemptHTTP2: true,
	}
	t.Cleanup(rt.CloseIdleConnections)
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}
}

func postBatch(t testing.TB, c *http.Client, addr string, msgs []raftpb.Message) (int, string, error) {
	t.Helper()
	body, err := AppendBatch(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+RaftPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestTLSExchange(t *testing.T) {
	svc := newService(t)
	a, b := startNode(t, svc, svc.endorse(t), 0), startNode(t, svc, svc.endorse(t), 0)
	peers := []Peer{a.peer(), b.peer()}
	a.tr.SetPeers(peers)
	b.tr.SetPeers(peers)

	app := raftpb.Message{Type: raftpb.MsgApp, From: a.id, To: b.id, Term: 3, LogTerm: 2, Index: 7, Commit: 6,
		Entries: []raftpb.Entry{{Term: 3, Index: 8, Data: []byte("entry 8")}, {Term: 3, Index: 9, Data: []byte("entry 9")}}}
	a.tr.Send([]raftpb.Message{app, heartbeat(a.id, b.id, 3)})
	got := b.in.next(t)
	if got.Type != raftpb.MsgApp || got.From != a.id || got.To != b.id || got.Index != 7 || len(got.Entries) != 2 || string(got.Entries[1].Data) != "entry 9" {
		t.Fatalf("b received %+v", got)
	}
	if hb := b.in.next(t); hb.Type != raftpb.MsgHeartbeat {
		t.Fatalf("b received %v second, want the heartbeat (order is kept)", hb.Type)
	}

	b.tr.Send([]raftpb.Message{{Type: raftpb.MsgAppResp, From: b.id, To: a.id, Term: 3, Index: 9}})
	if resp := a.in.next(t); resp.Type != raftpb.MsgAppResp || resp.From != b.id || resp.Index != 9 {
		t.Fatalf("a received %+v", resp)
	}

	eventually(t, "sent counters", func() bool {
		return a.tr.Stats().Peers[b.id].Sent == 2 && b.tr.Stats().Peers[a.id].Sent == 1
	})
	if s := b.tr.Stats().Peers[a.id]; s.Received != 2 || s.Dropped != 0 || s.RefusedBatches != 0 {
		t.Fatalf("b's counters for a: %+v", s)
	}
	if s := a.tr.Stats().Peers[b.id]; s.Received != 1 || s.HandshakeFailures != 0 {
		t.Fatalf("a's counters for b: %+v", s)
	}
}

func TestTLSRefusesUnendorsedClient(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	for i, rogue := range []identity{selfSigned(t), newService(t).endorse(t)} {
		_, _, err := postBatch(t, rawClient(t, rogue), a.addr, []raftpb.Message{heartbeat(rogue.id, a.id, 1)})
		if err == nil {
			t.Fatalf("rogue %d: the request went through", i)
		}
		eventually(t, "the inbound refusal to be counted", func() bool {
			return a.tr.Stats().InboundHandshakeFailures == uint64(i+1)
		})
	}
	a.in.none(t)
	eventually(t, "the refusal to be logged", func() bool { return strings.Count(a.logs.String(), "client certificate not endorsed") == 2 })
	logs := a.logs.String()
	for _, want := range []string{"level=WARN", "client certificate not endorsed by the service", "x509: certificate signed by unknown authority", "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if s := a.tr.Stats(); len(s.Peers) != 0 {
		t.Fatalf("refused connections were charged to peers: %+v", s.Peers)
	}
}

func TestTLSRefusesUnendorsedServer(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	rogue := selfSigned(t)

	// The rogue server accepts any client and any batch.
	ln := listen(t)
	var hits atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{rogue.cert},
			ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"h2"}},
	}
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	a.tr.SetPeers([]Peer{{ID: rogue.id, Address: ln.Addr().String()}})
	a.tr.Send([]raftpb.Message{heartbeat(a.id, rogue.id, 1)})
	eventually(t, "the handshake failure to be counted", func() bool {
		s := a.tr.Stats().Peers[rogue.id]
		return s.HandshakeFailures == 1 && s.Dropped == 1
	})
	if hits.Load() != 0 {
		t.Fatal("the rogue server received a batch")
	}
	eventually(t, "the refusal to be logged", func() bool { return strings.Contains(a.logs.String(), "refused the peer's certificate") })
	logs := a.logs.String()
	for _, want := range []string{"level=WARN", "refused the peer's certificate", "address=" + ln.Addr().String(), "x509: certificate signed by unknown authority", "peer=" + hexID(rogue.id)} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestTLSRefusesWrongPeer(t *testing.T) {
	svc := newService(t)
	a, b := startNode(t, svc, svc.endorse(t), 0), startNode(t, svc, svc.endorse(t), 0)
	c := svc.endorse(t)
	// a believes c lives at b's address: b's endorsed certificate is not c.
	a.tr.SetPeers([]Peer{{ID: c.id, Address: b.addr}})
	a.tr.Send([]raftpb.Message{heartbeat(a.id, c.id, 1)})
	eventually(t, "the handshake failure to be counted", func() bool {
		return a.tr.Stats().Peers[c.id].HandshakeFailures == 1
	})
	eventually(t, "the log to explain the wrong peer", func() bool {
		logs := a.logs.String()
		return strings.Contains(logs, ErrWrongPeer.Error()) && strings.Contains(logs, "raft id "+hexID(b.id))
	})
	b.in.none(t)
}

func TestTLSRefusesSpoofedSender(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	b, c := svc.endorse(t), svc.endorse(t)
	a.admit(b)
	client := rawClient(t, b)

	// b speaks for c: refused whole, even with an honest message first.
	status, body, err := postBatch(t, client, a.addr, []raftpb.Message{heartbeat(b.id, a.id, 1), heartbeat(c.id, a.id, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden || !strings.Contains(body, ErrSpoofedSender.Error()) {
		t.Fatalf("spoofed From: %d %q", status, body)
	}
	// b sends to someone else through a.
	status, body, err = postBatch(t, client, a.addr, []raftpb.Message{heartbeat(b.id, c.id, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusMisdirectedRequest || !strings.Contains(body, ErrMisdirected.Error()) {
		t.Fatalf("wrong To: %d %q", status, body)
	}
	a.in.none(t)
	if s := a.tr.Stats().Peers[b.id]; s.RefusedBatches != 2 || s.Received != 0 {
		t.Fatalf("a's counters for b: %+v", s)
	}
	// The honest batch on the same connection goes through.
	if status, body, err = postBatch(t, client, a.addr, []raftpb.Message{heartbeat(b.id, a.id, 1)}); err != nil || status != http.StatusNoContent {
		t.Fatalf("honest batch: %d %q %v", status, body, err)
	}
	if m := a.in.next(t); m.From != b.id {
		t.Fatalf("received %+v", m)
	}
	if !strings.Contains(a.logs.String(), "refused a batch") {
		t.Errorf("refusal not logged:\n%s", a.logs)
	}
}

func TestTLSSpoofedSendIsRefusedAndCounted(t *testing.T) {
	svc := newService(t)
	a, b := startNode(t, svc, svc.endorse(t), 0), startNode(t, svc, svc.endorse(t), 0)
	a.tr.SetPeers([]Peer{b.peer()})
	b.tr.SetPeers([]Peer{a.peer()})
	b.tr.Send([]raftpb.Message{heartbeat(12345, a.id, 1)})
	eventually(t, "the refusal to be counted on both sides", func() bool {
		return b.tr.Stats().Peers[a.id].Dropped == 1 && a.tr.Stats().Peers[b.id].RefusedBatches == 1
	})
	a.in.none(t)
	eventually(t, "the sender to log the refusal", func() bool {
		logs := b.logs.String()
		return strings.Contains(logs, "403") && strings.Contains(logs, ErrSpoofedSender.Error())
	})
}

func TestTLSMalformedBatch(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	b := svc.endorse(t)
	a.admit(b)
	for _, tc := range []struct {
		body   []byte
		ctype  string
		status int
	}{
		{[]byte{2, 0, 0, 0, 1}, ContentType, http.StatusBadRequest},
		{[]byte{1, 0, 0, 0, 1, 0, 0, 0, 9}, ContentType, http.StatusBadRequest},
		{[]byte{1}, "application/json", http.StatusUnsupportedMediaType},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://"+a.addr+RaftPath, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		resp, err := rawClient(t, b).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("body %x: status %d, want %d", tc.body, resp.StatusCode, tc.status)
		}
	}
	if s := a.tr.Stats().Peers[b.id]; s.RefusedBatches != 3 {
		t.Fatalf("refused %d batches, want 3", s.RefusedBatches)
	}
	resp, err := rawClient(t, b).Get("https://" + a.addr + RaftPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// blackHole accepts TCP connections and never answers; accepted receives
// each connection.
func blackHole(t testing.TB) (addr string, accepted chan net.Conn) {
	t.Helper()
	ln := listen(t)
	accepted = make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

func TestTLSQueueOverflowDropsAndCounts(t *testing.T) {
	svc := newService(t)
	const queueLen = 4
	a := startNode(t, svc, svc.endorse(t), queueLen)
	addr, accepted := blackHole(t)
	const peer = 99
	a.tr.SetPeers([]Peer{{ID: peer, Address: addr}})

	// The sender takes the first message and hangs in the handshake.
	a.tr.Send([]raftpb.Message{heartbeat(a.id, peer, 1)})
	select {
	case c := <-accepted:
		accepted <- c // for the cleanup to close
	case <-time.After(10 * time.Second):
		t.Fatal("the sender never dialled")
	}
	msgs := make([]raftpb.Message, queueLen+3)
	for i := range msgs {
		msgs[i] = heartbeat(a.id, peer, 1)
	}
	a.tr.Send(msgs) // queueLen fit, 3 overflow
	if s := a.tr.Stats().Peers[peer]; s.Dropped != 3 || s.Sent != 0 {
		t.Fatalf("after overflow: %+v, want 3 dropped", s)
	}
	// An unknown peer drops too.
	a.tr.Send([]raftpb.Message{heartbeat(a.id, 7, 1)})
	if s := a.tr.Stats().Peers[7]; s.Dropped != 1 {
		t.Fatalf("unknown peer: %+v", s)
	}
	// Close drops what is queued and the batch in flight: nothing is lost
	// from the books.
	if err := a.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if s := a.tr.Stats().Peers[peer]; s.Dropped != queueLen+3+1 {
		t.Fatalf("after Close: %+v, want %d dropped", s, queueLen+4)
	}
	a.tr.Send([]raftpb.Message{heartbeat(a.id, peer, 1)})
	if s := a.tr.Stats().Peers[peer]; s.Dropped != queueLen+5 {
		t.Fatalf("Send after Close: %+v", s)
	}
}

func TestTLSSetPeers(t *testing.T) {
	svc := newService(t)
	a, b := startNode(t, svc, svc.endorse(t), 0), startNode(t, svc, svc.endorse(t), 0)
	b.tr.SetPeers([]Peer{a.peer()})
	a.tr.SetPeers([]Peer{a.peer(), b.peer(), {ID: 0, Address: "x:1"}, {ID: 5}})
	if n := len(a.tr.senders); n != 1 {
		t.Fatalf("%d senders, want 1 (self, id 0 and no address are skipped)", n)
	}
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
	b.in.next(t)
	eventually(t, "the batch to be acknowledged", func() bool { return a.tr.Stats().Peers[b.id].Sent == 1 })

	a.tr.SetPeers(nil)
	if n := len(a.tr.senders); n != 0 {
		t.Fatalf("%d senders after removing every peer", n)
	}
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
	if s := a.tr.Stats().Peers[b.id]; s.Dropped != 1 {
		t.Fatalf("send to a removed peer: %+v", s)
	}
	a.tr.SetPeers([]Peer{b.peer()})
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 2)})
	if m := b.in.next(t); m.Term != 2 {
		t.Fatalf("received %+v", m)
	}
}

// transportGoroutines lists the goroutines running this package's code
// (not the tests'); with blockedOnly, only those blocked (waiting on a
// channel, a lock, I/O): a goroutine that signalled its end and is
// returning shows as runnable for an instant.
func transportGoroutines(blockedOnly bool) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if blockedOnly && (strings.Contains(g, " [runnable") || strings.Contains(g, " [running")) {
			continue
		}
		for _, fn := range []string{"(*sender).run", "(*handshakeListener).acceptLoop", "(*handshakeListener).handshake", "(*TLS).startServer", "(*TLS).ServeHTTP",
			"(*TLS).Forward", "(*TLS).serveForward"} {
			if strings.Contains(g, "internal/transport."+fn) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func TestTLSCloseStopsAllGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	svc := newService(t)
	executing := make(chan struct{}, 1)
	a := startNode(t, svc, svc.endorse(t), 0)
	b := startForwardNode(t, svc, svc.endorse(t), 0, func(ctx context.Context, _ uint64, _ *ForwardedRequest) *ForwardedResponse {
		executing <- struct{}{}
		<-ctx.Done() // until Close
		return &ForwardedResponse{Status: http.StatusOK}
	})
	peers := []Peer{a.peer(), b.peer(), {ID: 99, Address: "127.0.0.1:1"}} // 99: nobody listens
	a.tr.SetPeers(peers)
	b.tr.SetPeers(peers)
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1), heartbeat(a.id, 99, 1)})
	b.tr.Send([]raftpb.Message{heartbeat(b.id, a.id, 1)})
	a.in.next(t)
	b.in.next(t)
	// A forward in flight, held by b's handler.
	forwarded := make(chan error, 1)
	go func() {
		_, err := a.tr.Forward(context.Background(), b.id, &ForwardedRequest{Method: "POST", Path: "/"})
		forwarded <- err
	}()
	select {
	case <-executing:
	case <-time.After(10 * time.Second):
		t.Fatal("the forward never reached b")
	}
	// A refused inbound connection, and one that is left hanging.
	postBatch(t, rawClient(t, selfSigned(t)), a.addr, []raftpb.Message{heartbeat(1, a.id, 1)})
	hanging, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hanging.Close()
	if len(transportGoroutines(true)) == 0 {
		t.Fatal("no transport goroutines found: the check below would prove nothing")
	}

	closed := make(chan error, 1)
	go func() { closed <- errors.Join(a.tr.Close(), b.tr.Close(), a.tr.Close()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	if err := <-forwarded; !errors.Is(err, ErrClosed) {
		t.Fatalf("the forward in flight at Close: %v", err)
	}
	// Close waits for its own goroutines: none may be left blocked, at
	// once, and none at all once they returned.
	if gs := transportGoroutines(true); len(gs) != 0 {
		t.Fatalf("%d transport goroutines blocked after Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
	eventually(t, "the transport goroutines to return", func() bool { return len(transportGoroutines(false)) == 0 })
	// net/http's connection goroutines wind down after their connections
	// closed; the count must come back (bounded wait).
	runtime.GC()
	eventually(t, "the goroutine count to return to its baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestNewTLSRefusesBadConfig(t *testing.T) {
	svc := newService(t)
	good := svc.endorse(t)
	rogue := selfSigned(t)
	h := func(context.Context, []raftpb.Message) {}
	for name, cfg := range map[string]TLSConfig{
		"no listener":         {LocalID: good.id, Cert: good.cert, ServiceCert: svc.cert, Handler: h},
		"no handler":          {LocalID: good.id, Listener: listen(t), Cert: good.cert, ServiceCert: svc.cert},
		"no service":          {LocalID: good.id, Listener: listen(t), Cert: good.cert, Handler: h},
		"wrong local id":      {LocalID: good.id + 1, Listener: listen(t), Cert: good.cert, ServiceCert: svc.cert, Handler: h},
		"not endorsed":        {LocalID: rogue.id, Listener: listen(t), Cert: rogue.cert, ServiceCert: svc.cert, Handler: h},
		"negative queue":      {LocalID: good.id, Listener: listen(t), Cert: good.cert, ServiceCert: svc.cert, Handler: h, QueueLen: -1},
		"no node certificate": {LocalID: good.id, Listener: listen(t), ServiceCert: svc.cert, Handler: h},
	} {
		tr, err := NewTLS(cfg)
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
		if tr != nil {
			tr.Close()
		}
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
	}
}

package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

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
		a.admit(rogue) // listing its raft id does not let it in
		c, err := dialFrames(t, rogue, a.addr)
		if err == nil {
			if err = c.hello(); err == nil {
				err = c.batch([]raftpb.Message{heartbeat(rogue.id, a.id, 1)})
			}
		}
		if err == nil {
			t.Fatalf("rogue %d: the connection was accepted", i)
		}
		eventually(t, "the inbound refusal to be counted", func() bool {
			return a.tr.Stats().InboundHandshakeFailures == uint64(i+1)
		})
	}
	// An endorsed peer that does not speak the stream protocol.
	b := svc.endorse(t)
	a.admit(b)
	if c, err := dialFrames(t, b, a.addr, "h2"); err == nil {
		if err = c.hello(); err == nil {
			t.Fatal("a client without ALPN " + alpnProtocol + " was accepted")
		}
	}
	eventually(t, "the refusal without ALPN to be counted", func() bool { return a.tr.Stats().InboundHandshakeFailures == 3 })
	a.in.none(t)
	eventually(t, "the refusal to be logged", func() bool { return strings.Count(a.logs.String(), "client certificate not endorsed") == 2 })
	logs := a.logs.String()
	for _, want := range []string{"level=WARN", "client certificate not endorsed by the service", "x509: certificate signed by unknown authority", "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for id, s := range a.tr.Stats().Peers {
		if s != (PeerStats{}) {
			t.Fatalf("refused connections were charged to peer %x: %+v", id, s)
		}
	}
}

func TestTLSRefusesUnendorsedServer(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	rogue := selfSigned(t)
	addr, frames := rogueServer(t, rogue)

	a.tr.SetPeers([]Peer{{ID: rogue.id, Address: addr}})
	a.tr.Send([]raftpb.Message{heartbeat(a.id, rogue.id, 1)})
	eventually(t, "the handshake failure to be counted", func() bool {
		s := a.tr.Stats().Peers[rogue.id]
		return s.HandshakeFailures == 1 && s.Dropped == 1
	})
	if frames.Load() != 0 {
		t.Fatal("the rogue server received a frame")
	}
	eventually(t, "the refusal to be logged", func() bool { return strings.Contains(a.logs.String(), "refused the peer's certificate") })
	logs := a.logs.String()
	for _, want := range []string{"level=WARN", "refused the peer's certificate", "address=" + addr, "x509: certificate signed by unknown authority", "peer=" + hexID(rogue.id)} {
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

	// b speaks for c: refused whole, even with an honest message first,
	// and the connection closed.
	conn := connectFrames(t, b, a.addr)
	if err := conn.batch([]raftpb.Message{heartbeat(b.id, a.id, 1), heartbeat(c.id, a.id, 1)}); err != nil {
		t.Fatal(err)
	}
	if status, text := conn.goodbye(); status != http.StatusForbidden || !strings.Contains(text, ErrSpoofedSender.Error()) {
		t.Fatalf("spoofed From: %d %q", status, text)
	}
	// b sends to someone else through a.
	conn = connectFrames(t, b, a.addr)
	if err := conn.batch([]raftpb.Message{heartbeat(b.id, c.id, 1)}); err != nil {
		t.Fatal(err)
	}
	if status, text := conn.goodbye(); status != http.StatusMisdirectedRequest || !strings.Contains(text, ErrMisdirected.Error()) {
		t.Fatalf("wrong To: %d %q", status, text)
	}
	a.in.none(t)
	if s := a.tr.Stats().Peers[b.id]; s.RefusedBatches != 2 || s.Received != 0 {
		t.Fatalf("a's counters for b: %+v", s)
	}
	// An honest batch on a new connection goes through.
	conn = connectFrames(t, b, a.addr)
	if err := conn.batch([]raftpb.Message{heartbeat(b.id, a.id, 1)}); err != nil {
		t.Fatal(err)
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
	eventually(t, "the refusal to be counted", func() bool { return a.tr.Stats().Peers[b.id].RefusedBatches == 1 })
	a.in.none(t)
	// The message was written and flushed before a refused it: sent, as
	// far as b can tell (raft tolerates the loss).
	eventually(t, "the message to count as sent", func() bool { return b.tr.Stats().Peers[a.id].Sent == 1 })
	if s := b.tr.Stats().Peers[a.id]; s.Dropped != 0 {
		t.Fatalf("b's counters for a: %+v", s)
	}
	eventually(t, "the sender to log the goodbye", func() bool {
		logs := b.logs.String()
		return strings.Contains(logs, "level=WARN") && strings.Contains(logs, "refused the connection: 403") && strings.Contains(logs, ErrSpoofedSender.Error())
	})
	// The next message goes over a new connection.
	b.tr.Send([]raftpb.Message{heartbeat(b.id, a.id, 2)})
	if m := a.in.next(t); m.Term != 2 {
		t.Fatalf("received %+v", m)
	}
}

func TestTLSMalformedFrames(t *testing.T) {
	svc := newService(t)
	a := startForwardNode(t, svc, svc.endorse(t), 0, func(context.Context, uint64, *ForwardedRequest) *ForwardedResponse {
		t.Error("the handler was called")
		return &ForwardedResponse{Status: http.StatusOK}
	})
	b := svc.endorse(t)
	a.admit(b)
	header := func(kind frameKind, n uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{byte(kind)}, n)
	}
	for name, tc := range map[string]struct {
		raw    []byte
		status int
		says   error
	}{
		"batch version 2":    {append(header(frameBatch, 5), 2, 0, 0, 0, 1), http.StatusBadRequest, ErrUnsupportedVersion},
		"truncated batch":    {append(header(frameBatch, 9), 1, 0, 0, 0, 1, 0, 0, 0, 9), http.StatusBadRequest, ErrMalformedBatch},
		"batch too large":    {header(frameBatch, MaxBatchBytes+1), http.StatusRequestEntityTooLarge, ErrBatchTooLarge},
		"forward too large":  {header(frameForward, frameIDLen+MaxForwardWireBytes+1), http.StatusRequestEntityTooLarge, ErrForwardTooLarge},
		"forward without id": {append(header(frameForward, 4), 0, 0, 0, 1), http.StatusBadRequest, ErrMalformedFrame},
		"short cancel":       {append(header(frameCancel, 4), 0, 0, 0, 1), http.StatusBadRequest, ErrMalformedFrame},
		"unknown kind":       {header(42, 0), http.StatusBadRequest, ErrMalformedFrame},
		"wrong direction":    {header(frameHello, 0), http.StatusBadRequest, ErrMalformedFrame},
	} {
		conn := connectFrames(t, b, a.addr)
		if err := conn.write(tc.raw); err != nil {
			t.Fatal(err)
		}
		if status, text := conn.goodbye(); status != tc.status || !strings.Contains(text, tc.says.Error()) {
			t.Errorf("%s: goodbye %d %q, want %d saying %q", name, status, text, tc.status, tc.says)
		}
	}
	a.in.none(t)
	if s := a.tr.Stats().Peers[b.id]; s.RefusedBatches != 3 || s.RefusedForwards != 2 || s.Received != 0 {
		t.Fatalf("a's counters for b: %+v", s)
	}
	if !strings.Contains(a.logs.String(), "refused a frame") {
		t.Errorf("refusal not logged:\n%s", a.logs)
	}
}

func TestTLSRefusesUnknownSender(t *testing.T) {
	svc := newService(t)
	a := startNode(t, svc, svc.endorse(t), 0)
	stranger, b := svc.endorse(t), svc.endorse(t)
	a.admit(b)

	// Never added: refused at the start of its connection, nothing read.
	c, err := dialFrames(t, stranger, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	var rerr *RefusedError
	if err := c.hello(); !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden || !strings.Contains(rerr.Message, ErrUnknownSender.Error()) {
		t.Fatalf("stranger: %v", err)
	}
	if s := a.tr.Stats().Peers[stranger.id]; s.UnknownSender != 1 || s.RefusedBatches != 0 {
		t.Fatalf("counters for the stranger: %+v", s)
	}

	// Removed while connected: its connection is cut with a goodbye,
	// before SetPeers returns.
	conn := connectFrames(t, b, a.addr)
	if err := conn.batch([]raftpb.Message{heartbeat(b.id, a.id, 1)}); err != nil {
		t.Fatal(err)
	}
	a.in.next(t)
	a.tr.SetPeers(nil)
	if status, text := conn.goodbye(); status != http.StatusForbidden || !strings.Contains(text, ErrUnknownSender.Error()) {
		t.Fatalf("removed: goodbye %d %q", status, text)
	}
	c, err = dialFrames(t, b, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.hello(); !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden {
		t.Fatalf("removed, reconnecting: %v", err)
	}
	if s := a.tr.Stats().Peers[b.id]; s.UnknownSender != 1 || s.Received != 1 {
		t.Fatalf("counters for the removed peer: %+v", s)
	}
	eventually(t, "the refusal to be logged", func() bool {
		logs := a.logs.String()
		return strings.Contains(logs, "level=WARN") && strings.Contains(logs, "not a current peer") && strings.Contains(logs, "peer="+hexID(b.id))
	})
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
	eventually(t, "the batch to be sent", func() bool { return a.tr.Stats().Peers[b.id].Sent == 1 })

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

// Frames queued while the writer is busy (here: before the connection is
// up) share one flush: the 64 forwards and a thousand raft messages go in
// one write.
func TestTLSCoalescesWrites(t *testing.T) {
	const forwards, msgs = 64, 1000
	svc := newService(t)
	var arrived atomic.Int32
	all := make(chan struct{})
	primary := startForwardNode(t, svc, svc.endorse(t), 0, func(ctx context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		if arrived.Add(1) == forwards {
			close(all)
		}
		select { // the answers leave together
		case <-all:
		case <-ctx.Done():
		}
		return &ForwardedResponse{Status: http.StatusOK, Body: req.Body}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	g := newGate(t, primary.addr)
	primary.tr.SetPeers([]Peer{backup.peer()})
	backup.tr.SetPeers([]Peer{{ID: primary.id, Address: g.addr()}})

	// The first message has the sender dial; the gate holds the handshake
	// while the rest and the forwards queue.
	batch := make([]raftpb.Message, msgs)
	for i := range batch {
		batch[i] = heartbeat(backup.id, primary.id, uint64(i+1))
	}
	backup.tr.Send(batch)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, forwards)
	for i := range forwards {
		wg.Go(func() {
			_, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/w", Body: []byte{byte(i)}})
			errs <- err
		})
	}
	eventually(t, "the forwards to be queued", func() bool { return pendingForwards(backup.tr, primary.id) == forwards })
	g.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		if m := primary.in.next(t); m.Term != uint64(i+1) {
			t.Fatalf("message %d has term %d: out of order", i, m.Term)
		}
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.Sent != msgs || s.Forwarded != forwards {
		t.Fatalf("backup's counters: %+v", s)
	}
	out, in := backup.tr.stats.get(primary.id), primary.tr.stats.get(backup.id)
	t.Logf("backup: %d frames in %d flushes; primary's answers: %d frames in %d flushes",
		out.frames.Load(), out.flushes.Load(), in.frames.Load(), in.flushes.Load())
	if out.frames.Load() != forwards+1 || out.flushes.Load() != 1 {
		t.Fatalf("the backup wrote %d frames in %d flushes, want %d frames (the forwards and one batch) in one",
			out.frames.Load(), out.flushes.Load(), forwards+1)
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
		for _, fn := range []string{"(*sender).run", "(*sender).read", "(*TLS).acceptLoop", "(*TLS).serveConn",
			"(*inConn).write", "(*inConn).execute", "(*TLS).Forward"} {
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
	if c, err := dialFrames(t, selfSigned(t), a.addr); err == nil {
		c.hello()
	}
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
	// The count must come back (bounded wait: the runtime's own
	// goroutines wind down asynchronously).
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

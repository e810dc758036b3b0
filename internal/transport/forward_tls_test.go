package transport

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// forwardCall is what a ForwardHandler was called with.
type forwardCall struct {
	from uint64
	req  *ForwardedRequest
}

// testCtx is a context bounded well within the test timeout, so a bug
// fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair starts a primary executing forwarded requests with fh and a backup,
// each the other's peer, endorsed by svc.
func pair(t *testing.T, fh ForwardHandler) (svc *service, primary, backup *node) {
	t.Helper()
	svc = newService(t)
	primary = startForwardNode(t, svc, svc.endorse(t), 0, fh)
	backup = startNode(t, svc, svc.endorse(t), 0)
	peers := []Peer{primary.peer(), backup.peer()}
	primary.tr.SetPeers(peers)
	backup.tr.SetPeers(peers)
	return svc, primary, backup
}

func TestTLSForwardRoundTrip(t *testing.T) {
	calls := make(chan forwardCall, 4)
	_, primary, backup := pair(t, func(_ context.Context, from uint64, req *ForwardedRequest) *ForwardedResponse {
		calls <- forwardCall{from, req}
		if req.Path == "/conflict" {
			return &ForwardedResponse{Status: http.StatusConflict, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("taken")}
		}
		return &ForwardedResponse{
			Status: http.StatusOK,
			Header: http.Header{"X-Coco-Txid": {"2.17"}, "Content-Type": {"application/octet-stream"}, "Connection": {"close"}},
			Body:   append([]byte("echo:"), req.Body...),
		}
	})
	caller := newService(t).endorse(t) // a client certificate: any DER
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i % 251)
	}
	req := &ForwardedRequest{
		Method: http.MethodPut, Path: "/app/records/ä b", RawQuery: "k=%2F&x",
		Header: http.Header{
			"Content-Type": {"application/octet-stream"}, "Accept": {"*/*"},
			"Authorization": {"Bearer s3cret"}, "Cookie": {"a=b"},
		},
		Body: body, CallerCert: caller.cert.Certificate[0],
	}
	resp, err := backup.tr.Forward(testCtx(t), primary.id, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || resp.Header.Get("X-Coco-Txid") != "2.17" || resp.Header.Get("Connection") != "" ||
		!bytes.Equal(resp.Body, append([]byte("echo:"), body...)) {
		t.Fatalf("answer: %d %v, %d bytes", resp.Status, resp.Header, len(resp.Body))
	}
	got := <-calls
	if got.from != backup.id {
		t.Fatalf("the handler was told the request is from %x, want the backup %x", got.from, backup.id)
	}
	g := got.req
	if g.Method != req.Method || g.Path != req.Path || g.RawQuery != req.RawQuery || !bytes.Equal(g.Body, body) {
		t.Fatalf("the primary executes %s %s?%s with %d bytes", g.Method, g.Path, g.RawQuery, len(g.Body))
	}
	if want := (http.Header{"Content-Type": {"application/octet-stream"}, "Accept": {"*/*"}}); !reflect.DeepEqual(g.Header, want) {
		t.Fatalf("forwarded header %v, want %v", g.Header, want)
	}
	if cert, err := x509.ParseCertificate(g.CallerCert); err != nil || !cert.Equal(caller.cert.Leaf) {
		t.Fatalf("caller certificate not relayed: %v", err)
	}

	// An application refusal is an answer, not an error; empty parts stay
	// empty.
	resp, err = backup.tr.Forward(testCtx(t), primary.id, &ForwardedRequest{Method: http.MethodPost, Path: "/conflict"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusConflict || string(resp.Body) != "taken" {
		t.Fatalf("answer: %d %q", resp.Status, resp.Body)
	}
	if g := (<-calls).req; g.Body != nil || g.CallerCert != nil || len(g.Header) != 0 {
		t.Fatalf("empty request arrived as %+v", g)
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.Forwarded != 2 || s.ForwardFailures != 0 {
		t.Fatalf("backup's counters for the primary: %+v", s)
	}
	if s := primary.tr.Stats().Peers[backup.id]; s.ForwardsReceived != 2 || s.RefusedForwards != 0 {
		t.Fatalf("primary's counters for the backup: %+v", s)
	}
}

// Many forwards run concurrently over the sender's one connection: the
// primary's handler calls are concurrent.
func TestTLSForwardConcurrent(t *testing.T) {
	const concurrent = 64
	svc := newService(t)
	var arrived atomic.Int32
	all := make(chan struct{})
	var conns *countingListener
	primary := startNodeConfig(t, svc, svc.endorse(t), func(c *TLSConfig) {
		conns = &countingListener{Listener: c.Listener}
		c.Listener = conns
		c.Forward = func(ctx context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
			if arrived.Add(1) == concurrent {
				close(all)
			}
			select { // every request is in the handler at once, or none answers
			case <-all:
			case <-ctx.Done():
			}
			return &ForwardedResponse{Status: http.StatusOK, Body: req.Body}
		}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	peers := []Peer{primary.peer(), backup.peer()}
	primary.tr.SetPeers(peers)
	backup.tr.SetPeers(peers)

	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	for i := range concurrent {
		wg.Go(func() {
			body := []byte{byte(i)}
			resp, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/w", Body: body})
			if err == nil && !bytes.Equal(resp.Body, body) {
				err = errors.New("answers crossed: got " + string(resp.Body))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.Forwarded != concurrent {
		t.Fatalf("backup's counters: %+v", s)
	}
	if n := conns.accepted.Load(); n != 1 {
		t.Fatalf("the primary accepted %d connections, want 1", n)
	}
}

// A forward queued with raft messages goes first: it does not wait for
// large batches. Here the primary's raft handler holds the first batch
// until the forward is answered, so the forward is answered only if it
// was written before the batches.
func TestTLSForwardDoesNotWaitBehindRaft(t *testing.T) {
	svc := newService(t)
	release := make(chan struct{})
	primary := startNodeConfig(t, svc, svc.endorse(t), func(c *TLSConfig) {
		c.Handler = func(ctx context.Context, msgs []raftpb.Message) {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		c.Forward = func(_ context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
			return &ForwardedResponse{Status: http.StatusOK, Body: req.Body}
		}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	g := newGate(t, primary.addr)
	primary.tr.SetPeers([]Peer{backup.peer()})
	backup.tr.SetPeers([]Peer{{ID: primary.id, Address: g.addr()}})

	// Three 3 MiB entries: three batch frames, about the size of a
	// catch-up. The first has the sender dial; the gate holds the
	// handshake.
	msgs := make([]raftpb.Message, 3)
	for i := range msgs {
		msgs[i] = raftpb.Message{Type: raftpb.MsgApp, From: backup.id, To: primary.id, Term: 2, Index: uint64(i),
			Entries: []raftpb.Entry{{Term: 2, Index: uint64(i + 1), Data: make([]byte, 3<<20)}}}
	}
	backup.tr.Send(msgs)
	done := make(chan error, 1)
	go func() {
		_, err := backup.tr.Forward(testCtx(t), primary.id, &ForwardedRequest{Method: "POST", Path: "/w"})
		done <- err
	}()
	eventually(t, "the forward to be queued", func() bool { return pendingForwards(backup.tr, primary.id) == 1 })
	g.open()
	if err := <-done; err != nil {
		t.Fatalf("the forward waited behind the raft batches: %v", err)
	}
	close(release)
	eventually(t, "the batches to be sent", func() bool { return backup.tr.Stats().Peers[primary.id].Sent == 3 })
}

// A forward does not wait for raft's backoff: it dials at once, and fails
// at once when the peer cannot be reached.
func TestTLSForwardDoesNotWaitForBackoff(t *testing.T) {
	slowBackoff(t)
	svc := newService(t)
	primary := startForwardNode(t, svc, svc.endorse(t), 0, func(_ context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		return &ForwardedResponse{Status: http.StatusOK}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	backup.tr.SetPeers([]Peer{primary.peer()})

	// The primary does not list the backup yet: the backup's raft message
	// is refused at connection, and its sender backs off for an hour.
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 1)})
	eventually(t, "the refused message to be dropped", func() bool { return backup.tr.Stats().Peers[primary.id].Dropped == 1 })
	primary.tr.SetPeers([]Peer{backup.peer()})
	ctx := testCtx(t)
	if _, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/w"}); err != nil {
		t.Fatalf("forward during the backoff: %v", err)
	}
	// A raft message queued meanwhile rides the forward's connection.
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 2)})
	if m := primary.in.next(t); m.Term != 2 {
		t.Fatalf("received %+v", m)
	}

	// A peer that is down: the raft sender backs off for an hour, a
	// forward fails fast.
	down := listen(t)
	addr := down.Addr().String()
	down.Close()
	gone := svc.endorse(t)
	backup.tr.SetPeers([]Peer{primary.peer(), {ID: gone.id, Address: addr}})
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, gone.id, 1)})
	eventually(t, "the message to the peer that is down to be dropped", func() bool { return backup.tr.Stats().Peers[gone.id].Dropped == 1 })
	for range 2 {
		if _, err := backup.tr.Forward(ctx, gone.id, &ForwardedRequest{Method: "POST", Path: "/w"}); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("forward to a peer that is down: %v", err)
		}
	}
}

// A forward in flight when its connection dies fails with ErrUnreachable
// (it may or may not have been executed), and the primary's handler
// context is cancelled.
func TestTLSForwardConnectionLost(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	svc := newService(t)
	primary := startForwardNode(t, svc, svc.endorse(t), 0, func(ctx context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		if req.Path == "/hang" {
			entered <- struct{}{}
			<-ctx.Done()
			cancelled <- struct{}{}
		}
		return &ForwardedResponse{Status: http.StatusOK}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	g := newGate(t, primary.addr)
	g.open()
	primary.tr.SetPeers([]Peer{backup.peer()})
	backup.tr.SetPeers([]Peer{{ID: primary.id, Address: g.addr()}})

	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/hang"})
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the primary")
	}
	g.cut()
	if err := <-done; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("forward on a lost connection: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the primary's handler context was not cancelled")
	}
	// The next forward has a new connection.
	if _, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/"}); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.ForwardFailures != 1 || s.Forwarded != 1 {
		t.Fatalf("backup's counters: %+v", s)
	}
}

// A forwarded request that does not fit in the primary's budget is
// refused at once (503, retry): the connection's reader does not wait
// for the budget, so raft messages behind it are not held up.
func TestTLSForwardBusy(t *testing.T) {
	_, primary, backup := pair(t, func(_ context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		return &ForwardedResponse{Status: http.StatusOK}
	})
	const free = 16
	if !primary.tr.fwdBudget.tryAcquire(forwardBudgetBytes - free) {
		t.Fatal("the budget is not free")
	}
	ctx := testCtx(t)
	_, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/w", Body: make([]byte, free)})
	var rerr *RefusedError
	if !errors.As(err, &rerr) || rerr.Status != http.StatusServiceUnavailable || rerr.Kind != RefusedForward || !strings.Contains(rerr.Message, "retry") {
		t.Fatalf("forward over the budget: %v", err)
	}
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 1)})
	primary.in.next(t)
	primary.tr.fwdBudget.release(forwardBudgetBytes - free)
	if _, err := backup.tr.Forward(ctx, primary.id, &ForwardedRequest{Method: "POST", Path: "/w", Body: make([]byte, free)}); err != nil {
		t.Fatalf("once the budget is free: %v", err)
	}
	if s := primary.tr.Stats().Peers[backup.id]; s.RefusedForwards != 1 || s.ForwardsReceived != 1 {
		t.Fatalf("primary's counters: %+v", s)
	}
	eventually(t, "the answered request's budget to be given back", func() bool { return primary.tr.fwdBudget.free.Load() == forwardBudgetBytes })
}

// countingListener counts the connections accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func TestTLSForwardRefusesMalformed(t *testing.T) {
	var calls atomic.Int32
	svc := newService(t)
	a := startForwardNode(t, svc, svc.endorse(t), 0, func(context.Context, uint64, *ForwardedRequest) *ForwardedResponse {
		calls.Add(1)
		return &ForwardedResponse{Status: http.StatusNoContent}
	})
	b := svc.endorse(t)
	a.admit(b)
	conn := connectFrames(t, b, a.addr)
	valid, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		body   []byte
		status int
		says   string
	}{
		{"garbage", []byte("not cbor"), http.StatusBadRequest, ErrBadForward.Error()},
		{"empty", nil, http.StatusBadRequest, ErrBadForward.Error()},
		{"truncated", valid[:len(valid)-1], http.StatusBadRequest, ErrBadForward.Error()},
		{"version 2", raw(t, map[int]any{0: 2, 1: "POST"}), http.StatusBadRequest, ErrUnsupportedVersion.Error()},
		{"bad header", raw(t, &forwardRequestWire{Version: 1, Method: "POST", Path: "/",
			Header: map[string][]string{"Cookie": {"a"}}}), http.StatusBadRequest, `"Cookie" is not forwarded`},
		{"meta too large", raw(t, &forwardRequestWire{Version: 1, Method: "POST", Path: "/",
			CallerCert: make([]byte, MaxForwardMetaBytes)}), http.StatusRequestEntityTooLarge, ErrForwardTooLarge.Error()},
	}
	// Refusals concern one request each: the connection goes on.
	for i, c := range cases {
		if err := conn.forward(uint64(i+1), c.body); err != nil {
			t.Fatal(err)
		}
		id, _, rerr := conn.answer()
		if id != uint64(i+1) || rerr == nil || rerr.Status != c.status || !strings.Contains(rerr.Message, c.says) {
			t.Errorf("%s: id %d, %v, want %d saying %q", c.name, id, rerr, c.status, c.says)
		}
	}
	if calls.Load() != 0 {
		t.Fatal("the handler was called for a malformed request")
	}
	if s := a.tr.Stats().Peers[b.id]; s.RefusedForwards != uint64(len(cases)) || s.ForwardsReceived != 0 || s.RefusedBatches != 0 {
		t.Fatalf("counters for the sender: %+v", s)
	}
	if !strings.Contains(a.logs.String(), "refused a forwarded request") {
		t.Errorf("refusals not logged:\n%s", a.logs)
	}
	// The valid request goes through on the same connection.
	if err := conn.forward(99, valid); err != nil {
		t.Fatal(err)
	}
	if id, resp, rerr := conn.answer(); id != 99 || rerr != nil || resp.Status != http.StatusNoContent {
		t.Fatalf("valid request: id %d, %+v, %v", id, resp, rerr)
	}
	// An id reused while its request is in flight breaks the protocol.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	h := startForwardNode(t, svc, svc.endorse(t), 0, func(ctx context.Context, _ uint64, _ *ForwardedRequest) *ForwardedResponse {
		select {
		case <-hang:
		case <-ctx.Done():
		}
		return &ForwardedResponse{Status: http.StatusOK}
	})
	h.admit(b)
	conn = connectFrames(t, b, h.addr)
	for range 2 {
		if err := conn.forward(7, valid); err != nil {
			t.Fatal(err)
		}
	}
	if status, text := conn.goodbye(); status != http.StatusBadRequest || !strings.Contains(text, "already in flight") {
		t.Fatalf("reused id: goodbye %d %q", status, text)
	}
}

func TestTLSForwardRefusals(t *testing.T) {
	// A node without a ForwardHandler refuses; a handler's answer that
	// cannot be relayed is the primary's fault, 500, not an answer.
	svc := newService(t)
	none := startNode(t, svc, svc.endorse(t), 0)
	bad := startForwardNode(t, svc, svc.endorse(t), 0, func(_ context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		if req.Path == "/nil" {
			return nil
		}
		return &ForwardedResponse{Status: 42}
	})
	backup := startNode(t, svc, svc.endorse(t), 0)
	peers := []Peer{none.peer(), bad.peer(), backup.peer()}
	for _, n := range []*node{none, bad, backup} {
		n.tr.SetPeers(peers)
	}
	ctx := testCtx(t)
	req := &ForwardedRequest{Method: "POST", Path: "/"}
	var rerr *RefusedError
	_, err := backup.tr.Forward(ctx, none.id, req)
	if !errors.As(err, &rerr) || rerr.Status != http.StatusNotImplemented || rerr.Kind != RefusedForward || !errors.Is(err, ErrRefused) {
		t.Fatalf("no handler: %v", err)
	}
	for _, path := range []string{"/", "/nil"} {
		_, err = backup.tr.Forward(ctx, bad.id, &ForwardedRequest{Method: "POST", Path: path})
		if !errors.As(err, &rerr) || rerr.Status != http.StatusInternalServerError || !strings.Contains(rerr.Message, "cannot be relayed") {
			t.Fatalf("bad answer to %s: %v", path, err)
		}
	}
	if !strings.Contains(bad.logs.String(), "level=ERROR") {
		t.Errorf("the bad answer is not logged as an error:\n%s", bad.logs)
	}
	// The backup checks its side before anything is sent.
	if _, err = backup.tr.Forward(ctx, bad.id, &ForwardedRequest{Method: "POST", Path: "no slash"}); !errors.Is(err, ErrBadForward) {
		t.Fatalf("bad request: %v", err)
	}
	if s := backup.tr.Stats().Peers[bad.id]; s.ForwardFailures != 2 || s.Forwarded != 0 {
		t.Fatalf("backup's counters: %+v", s)
	}
	// Unknown peers, the local node, a closed transport.
	if _, err = backup.tr.Forward(ctx, 12345, req); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	if _, err = backup.tr.Forward(ctx, backup.id, req); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("itself: %v", err)
	}
	backup.tr.Close()
	if _, err = backup.tr.Forward(ctx, none.id, req); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestTLSForwardRefusesUnendorsed(t *testing.T) {
	var calls atomic.Int32
	svc := newService(t)
	primary := startForwardNode(t, svc, svc.endorse(t), 0, func(context.Context, uint64, *ForwardedRequest) *ForwardedResponse {
		calls.Add(1)
		return &ForwardedResponse{Status: http.StatusOK}
	})
	valid, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	// Inbound: a client the service did not endorse fails the handshake,
	// even if the primary lists its raft id.
	for i, rogue := range []identity{selfSigned(t), newService(t).endorse(t)} {
		primary.admit(rogue)
		c, err := dialFrames(t, rogue, primary.addr)
		if err == nil {
			if err = c.hello(); err == nil {
				err = c.forward(1, valid)
			}
		}
		if err == nil {
			t.Fatalf("rogue %d: the connection was accepted", i)
		}
		eventually(t, "the refusal to be counted", func() bool { return primary.tr.Stats().InboundHandshakeFailures == uint64(i+1) })
	}
	if calls.Load() != 0 {
		t.Fatal("the handler was called for an unendorsed client")
	}

	// Outbound: a server the service did not endorse never sees the
	// request; nor does an endorsed node at the address of another peer.
	backup := startNode(t, svc, svc.endorse(t), 0)
	rogue := selfSigned(t)
	addr, frames := rogueServer(t, rogue)
	impostor := svc.endorse(t) // believed to live at the primary's address
	backup.tr.SetPeers([]Peer{{ID: rogue.id, Address: addr}, {ID: impostor.id, Address: primary.addr}})
	ctx := testCtx(t)
	var herr *HandshakeError
	if _, err := backup.tr.Forward(ctx, rogue.id, sampleRequest()); !errors.As(err, &herr) || !errors.Is(err, ErrNotEndorsed) {
		t.Fatalf("unendorsed server: %v", err)
	}
	if _, err := backup.tr.Forward(ctx, impostor.id, sampleRequest()); !errors.As(err, &herr) || !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("wrong peer: %v", err)
	}
	if frames.Load() != 0 || calls.Load() != 0 {
		t.Fatal("a request reached a server that is not the peer")
	}
	if s := backup.tr.Stats().Peers[rogue.id]; s.HandshakeFailures == 0 || s.ForwardFailures != 1 {
		t.Fatalf("counters for the rogue: %+v", s)
	}
}

func TestTLSRefusesRemovedNode(t *testing.T) {
	svc, primary, backup := pair(t, func(context.Context, uint64, *ForwardedRequest) *ForwardedResponse {
		return &ForwardedResponse{Status: http.StatusOK}
	})
	ctx := testCtx(t)
	req := &ForwardedRequest{Method: "POST", Path: "/"}
	if _, err := backup.tr.Forward(ctx, primary.id, req); err != nil {
		t.Fatal(err)
	}
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 1)})
	primary.in.next(t)

	// The primary removes the backup, which still has the primary and an
	// endorsed certificate: its connection is cut with a goodbye, which
	// the backup logs.
	primary.tr.SetPeers([]Peer{primary.peer()})
	eventually(t, "the backup to log the goodbye", func() bool {
		return strings.Contains(backup.logs.String(), "refused the connection: 403")
	})
	// Its next connections are refused at their start.
	_, err := backup.tr.Forward(ctx, primary.id, req)
	var rerr *RefusedError
	if !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden || rerr.Kind != RefusedConnection || !strings.Contains(rerr.Message, ErrUnknownSender.Error()) {
		t.Fatalf("forward from a removed node: %v", err)
	}
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 2)})
	eventually(t, "the message to be refused and counted on both sides", func() bool {
		return primary.tr.Stats().Peers[backup.id].UnknownSender == 2 && backup.tr.Stats().Peers[primary.id].Dropped == 1
	})
	primary.in.none(t)
	eventually(t, "the refusal to be logged", func() bool {
		logs := primary.logs.String()
		return strings.Contains(logs, "level=WARN") && strings.Contains(logs, "not a current peer") && strings.Contains(logs, "peer="+hexID(backup.id))
	})

	// An endorsed node that was never added is refused the same way.
	stranger := svc.endorse(t)
	c, err := dialFrames(t, stranger, primary.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.hello(); !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden || !strings.Contains(rerr.Message, ErrUnknownSender.Error()) {
		t.Fatalf("never added: %v", err)
	}

	// Listed again, it is heard again.
	primary.tr.SetPeers([]Peer{primary.peer(), backup.peer()})
	if _, err := backup.tr.Forward(ctx, primary.id, req); err != nil {
		t.Fatalf("re-added: %v", err)
	}
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 3)})
	if m := primary.in.next(t); m.Term != 3 {
		t.Fatalf("received %+v", m)
	}
}

func TestTLSForwardContext(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	_, primary, backup := pair(t, func(ctx context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		entered <- struct{}{}
		<-ctx.Done() // the handler honours its context
		cancelled <- context.Cause(ctx)
		return &ForwardedResponse{Status: http.StatusOK}
	})
	req := &ForwardedRequest{Method: "POST", Path: "/slow"}
	// inFlight starts a Forward, waits until the primary executes it,
	// stops it with stop, and returns Forward's error and the cause the
	// primary's handler saw its context end with.
	inFlight := func(ctx context.Context, stop func()) (error, error) {
		t.Helper()
		errc := make(chan error, 1)
		go func() {
			_, err := backup.tr.Forward(ctx, primary.id, req)
			errc <- err
		}()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the request never reached the primary")
		}
		stop()
		var err error
		select {
		case err = <-errc:
		case <-time.After(10 * time.Second):
			t.Fatal("Forward did not return")
		}
		var cause error
		select {
		case cause = <-cancelled:
		case <-time.After(10 * time.Second):
			t.Fatal("the primary's handler context was not cancelled")
		}
		return err, cause
	}

	// The caller gives up: a cancel frame tells the primary, on a
	// connection that stays up.
	ctx, cancel := context.WithCancel(testCtx(t))
	if err, cause := inFlight(ctx, cancel); !errors.Is(err, context.Canceled) || !errors.Is(cause, errForwardAbandoned) {
		t.Fatalf("cancelled: %v; the primary's handler saw %v", err, cause)
	}
	if _, err := backup.tr.Forward(ctx, primary.id, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("already cancelled: %v", err)
	}
	past, cancelPast := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelPast()
	if _, err := backup.tr.Forward(past, primary.id, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline passed: %v", err)
	}
	// Removing the peer cancels the forwards in flight to it.
	if err, _ := inFlight(testCtx(t), func() { backup.tr.SetPeers(nil) }); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("removed while forwarding: %v", err)
	}
	backup.tr.SetPeers([]Peer{primary.peer()})
	if err, _ := inFlight(testCtx(t), func() { backup.tr.Close() }); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed while forwarding: %v", err)
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.ForwardFailures != 5 || s.Forwarded != 0 {
		t.Fatalf("backup's counters: %+v", s)
	}
	eventually(t, "the primary's handler calls to return", func() bool { return primary.tr.Stats().Peers[backup.id].ForwardsReceived == 3 })
}

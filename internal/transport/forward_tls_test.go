package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
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

// A raft batch stuck in the primary's handler holds neither forwarded
// requests nor each other: many run concurrently over the connection.
func TestTLSForwardDoesNotWaitBehindRaft(t *testing.T) {
	const concurrent = 64 // far over the 8 streams a connection once allowed
	svc := newService(t)
	raftEntered, release := make(chan struct{}, 1), make(chan struct{})
	var arrived atomic.Int32
	all := make(chan struct{})
	var conns *countingListener
	primary := startNodeConfig(t, svc, svc.endorse(t), func(c *TLSConfig) {
		conns = &countingListener{Listener: c.Listener}
		c.Listener = conns
		c.Handler = func(ctx context.Context, _ []raftpb.Message) {
			raftEntered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
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
	t.Cleanup(func() { close(release) })
	backup := startNode(t, svc, svc.endorse(t), 0)
	peers := []Peer{primary.peer(), backup.peer()}
	primary.tr.SetPeers(peers)
	backup.tr.SetPeers(peers)

	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 1)})
	select {
	case <-raftEntered:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the primary")
	}
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
	if s := backup.tr.Stats().Peers[primary.id]; s.Forwarded != concurrent || s.Sent != 0 {
		t.Fatalf("backup's counters: %+v (the batch is still in the handler)", s)
	}
	// All of it shared the sender's connection: the server's stream limit
	// fits them, so the client did not have to open others.
	if n := conns.accepted.Load(); n != 1 {
		t.Fatalf("the primary accepted %d connections, want 1", n)
	}
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

// postForward posts body to addr's forward endpoint as client.
func postForward(t *testing.T, c *http.Client, addr, ctype string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+ForwardPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
	client := rawClient(t, b)
	valid, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		ctype  string
		body   []byte
		status int
		says   string
	}{
		"content type": {"application/json", valid, http.StatusUnsupportedMediaType, "content type"},
		"garbage":      {ForwardContentType, []byte("not cbor"), http.StatusBadRequest, ErrBadForward.Error()},
		"empty":        {ForwardContentType, nil, http.StatusBadRequest, ErrBadForward.Error()},
		"truncated":    {ForwardContentType, valid[:len(valid)-1], http.StatusBadRequest, ErrBadForward.Error()},
		"version 2":    {ForwardContentType, raw(t, map[int]any{0: 2, 1: "POST"}), http.StatusBadRequest, ErrUnsupportedVersion.Error()},
		"bad header": {ForwardContentType, raw(t, &forwardRequestWire{Version: 1, Method: "POST", Path: "/",
			Header: map[string][]string{"Cookie": {"a"}}}), http.StatusBadRequest, `"Cookie" is not forwarded`},
		"meta too large": {ForwardContentType, raw(t, &forwardRequestWire{Version: 1, Method: "POST", Path: "/",
			CallerCert: make([]byte, MaxForwardMetaBytes)}), http.StatusRequestEntityTooLarge, ErrForwardTooLarge.Error()},
	} {
		status, text := postForward(t, client, a.addr, c.ctype, c.body)
		if status != c.status || !strings.Contains(text, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", name, status, text, c.status, c.says)
		}
	}
	resp, err := client.Get("https://" + a.addr + ForwardPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if calls.Load() != 0 {
		t.Fatal("the handler was called for a malformed request")
	}
	if s := a.tr.Stats().Peers[b.id]; s.RefusedForwards != 7 || s.ForwardsReceived != 0 || s.RefusedBatches != 0 {
		t.Fatalf("counters for the sender: %+v", s)
	}
	if !strings.Contains(a.logs.String(), "refused a forwarded request") {
		t.Errorf("refusals not logged:\n%s", a.logs)
	}
	// The valid request goes through on the same connection.
	if status, text := postForward(t, client, a.addr, ForwardContentType, valid); status != http.StatusOK {
		t.Fatalf("valid request: %d %q", status, text)
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
	if !errors.As(err, &rerr) || rerr.Status != http.StatusNotImplemented || rerr.Path != ForwardPath || !errors.Is(err, ErrRefused) {
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
		req, _ := http.NewRequest(http.MethodPost, "https://"+primary.addr+ForwardPath, bytes.NewReader(valid))
		req.Header.Set("Content-Type", ForwardContentType)
		if resp, err := rawClient(t, rogue).Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("rogue %d: answered %d", i, resp.StatusCode)
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
	ln := listen(t)
	var hits atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{rogue.cert},
			ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"h2"}},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	impostor := svc.endorse(t) // believed to live at the primary's address
	backup.tr.SetPeers([]Peer{{ID: rogue.id, Address: ln.Addr().String()}, {ID: impostor.id, Address: primary.addr}})
	ctx := testCtx(t)
	var herr *HandshakeError
	if _, err := backup.tr.Forward(ctx, rogue.id, sampleRequest()); !errors.As(err, &herr) || !errors.Is(err, ErrNotEndorsed) {
		t.Fatalf("unendorsed server: %v", err)
	}
	if _, err := backup.tr.Forward(ctx, impostor.id, sampleRequest()); !errors.As(err, &herr) || !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("wrong peer: %v", err)
	}
	if hits.Load() != 0 || calls.Load() != 0 {
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

	// The primary removes the backup; the backup still has the primary
	// and an endorsed certificate, and its connection is open.
	primary.tr.SetPeers([]Peer{primary.peer()})
	_, err := backup.tr.Forward(ctx, primary.id, req)
	var rerr *RefusedError
	if !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden || !strings.Contains(rerr.Message, ErrUnknownSender.Error()) {
		t.Fatalf("forward from a removed node: %v", err)
	}
	backup.tr.Send([]raftpb.Message{heartbeat(backup.id, primary.id, 2)})
	eventually(t, "the batch to be refused and counted on both sides", func() bool {
		s := primary.tr.Stats().Peers[backup.id]
		return s.UnknownSender == 2 && s.RefusedBatches == 1 && s.RefusedForwards == 1 &&
			backup.tr.Stats().Peers[primary.id].Dropped == 1
	})
	primary.in.none(t)
	eventually(t, "the refusal to be logged", func() bool {
		logs := primary.logs.String()
		return strings.Contains(logs, "level=WARN") && strings.Contains(logs, "not a current peer") && strings.Contains(logs, "peer="+hexID(backup.id))
	})

	// An endorsed node that was never added is refused the same way.
	stranger := svc.endorse(t)
	status, text := postForward(t, rawClient(t, stranger), primary.addr, ForwardContentType, mustEncodeRequest(t, req))
	if status != http.StatusForbidden || !strings.Contains(text, ErrUnknownSender.Error()) {
		t.Fatalf("never added: %d %q", status, text)
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

func mustEncodeRequest(t testing.TB, r *ForwardedRequest) []byte {
	t.Helper()
	b, err := EncodeForwardedRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	// stops it with stop, and returns Forward's error once the primary's
	// handler saw its context end.
	inFlight := func(ctx context.Context, stop func()) error {
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
		select {
		case <-cancelled:
		case <-time.After(10 * time.Second):
			t.Fatal("the primary's handler context was not cancelled")
		}
		return err
	}

	ctx, cancel := context.WithCancel(testCtx(t))
	if err := inFlight(ctx, cancel); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
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
	if err := inFlight(testCtx(t), func() { backup.tr.SetPeers(nil) }); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("removed while forwarding: %v", err)
	}
	backup.tr.SetPeers([]Peer{primary.peer()})
	if err := inFlight(testCtx(t), func() { backup.tr.Close() }); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed while forwarding: %v", err)
	}
	if s := backup.tr.Stats().Peers[primary.id]; s.ForwardFailures != 5 || s.Forwarded != 0 {
		t.Fatalf("backup's counters: %+v", s)
	}
}

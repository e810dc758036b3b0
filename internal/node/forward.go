package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strconv"
	"sync"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/transport"
)

// Writes that reach a backup are executed by the primary: the backup
// forwards the request over the node-to-node channel with the caller's
// certificate, and relays the primary's answer unchanged
// (docs/replication.md §5). Reads are answered locally.

// forwardedKey marks a request that a backup forwarded to this node.
type forwardedKey struct{}

func isForwarded(r *http.Request) bool { return r.Context().Value(forwardedKey{}) != nil }

// forwardedHeaders are the request headers a forwarded write carries: the
// ones handlers look at.
var forwardedHeaders = []string{"Content-Type", "Accept"}

// relayedHeaders are the response headers a backup relays.
var relayedHeaders = []string{TxIDHeader, "Content-Type", "Retry-After", "Allow"}

// forward sends a write to the primary and relays its answer. body is the
// request body, already read and bounded.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if isForwarded(r) {
		// The sender thought this node was primary; it is not (any more).
		// Never forward twice: the client retries.
		writeError(w, notPrimaryError())
		return
	}
	leader := n.replica.Status().Leader
	if leader == 0 || leader == n.raftID {
		writeError(w, notPrimaryError())
		return
	}
	req := &transport.ForwardedRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: http.Header{}, Body: body}
	for _, h := range forwardedHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.CallerCert = r.TLS.PeerCertificates[0].Raw
	}
	n.metrics.forwarded.Inc()
	resp, err := n.tr.Forward(r.Context(), leader, req)
	if err != nil {
		writeError(w, app.Errorf(http.StatusServiceUnavailable, app.CodeServiceUnavailable,
			"this node is a backup and could not reach the primary (raft id %s) to execute the write: %v; retry", raftIDString(leader), err))
		return
	}
	for _, h := range relayedHeaders {
		if v := resp.Header.Values(h); len(v) > 0 {
			w.Header()[h] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}

func notPrimaryError() *app.Error {
	return app.Errorf(http.StatusServiceUnavailable, app.CodeServiceUnavailable, "no primary is available to execute writes (an election is in progress); retry")
}

// serveForwarded executes a write a backup forwarded (transport's
// ForwardHandler): it runs through the same routing, authentication and
// limits as a request from a client, as the caller whose certificate the
// backup saw.
func (n *Node) serveForwarded(ctx context.Context, from uint64, fr *transport.ForwardedRequest) *transport.ForwardedResponse {
	target := fr.Path
	if fr.RawQuery != "" {
		target += "?" + fr.RawQuery
	}
	r, err := http.NewRequestWithContext(context.WithValue(ctx, forwardedKey{}, from), fr.Method, target, bytes.NewReader(fr.Body))
	if err != nil {
		return plainResponse(http.StatusBadRequest, app.CodeInvalidInput, "forwarded request: "+err.Error())
	}
	r.Header = fr.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.ContentLength = int64(len(fr.Body))
	r.RemoteAddr = "forwarded-by-" + raftIDString(from)
	if len(fr.CallerCert) > 0 {
		cert, err := n.callerCerts.parse(fr.CallerCert)
		if err != nil {
			return plainResponse(http.StatusBadRequest, app.CodeInvalidInput, "forwarded caller certificate: "+err.Error())
		}
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{cert}}
	}
	rec := &recorder{header: http.Header{}}
	n.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &transport.ForwardedResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

func plainResponse(status int, code, msg string) *transport.ForwardedResponse {
	rec := &recorder{header: http.Header{}}
	writeError(rec, app.Errorf(status, code, "%s", msg))
	return &transport.ForwardedResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

// recorder is the http.ResponseWriter of a forwarded request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// certCache keeps the parsed certificates of forwarded callers: a backup
// forwards the same few clients' certificates over and over, and parsing
// one was a measurable share of a forwarded write. It is bounded: when it
// is full it starts again empty.
type certCache struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

const certCacheSize = 4096

func (c *certCache) parse(der []byte) (*x509.Certificate, error) {
	c.mu.Lock()
	cert, ok := c.certs[string(der)]
	c.mu.Unlock()
	if ok {
		return cert, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.certs == nil || len(c.certs) >= certCacheSize {
		c.certs = make(map[string]*x509.Certificate)
	}
	c.certs[string(der)] = cert
	c.mu.Unlock()
	return cert, nil
}

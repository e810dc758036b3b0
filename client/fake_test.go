package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/receipt"
)

// identity is a certificate with its key, in both PEM and parsed form.
type identity struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

func (id identity) tlsCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(id.certPEM, id.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newIdentity makes an ECDSA P-256 certificate signed by parent, or
// self-signed if parent is nil.
func newIdentity(t *testing.T, cn string, parent *identity, tmpl x509.Certificate) identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
		t.Fatal(err)
	}
	tmpl.Subject = pkix.Name{CommonName: cn}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	signer, signerCert := key, &tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return identity{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
	}
}

// pki is a service identity, a node certificate it endorses and a user.
type pki struct {
	service, node, user identity
}

func newPKI(t *testing.T) pki {
	t.Helper()
	service := newIdentity(t, "service", nil, x509.Certificate{
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	return pki{
		service: service,
		node: newIdentity(t, "node", &service, x509.Certificate{
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}),
		user: newIdentity(t, "user0", nil, x509.Certificate{
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}),
	}
}

// fakeNode implements the node API in memory. Tests set its knobs under mu.
type fakeNode struct {
	t    *testing.T
	user *x509.Certificate

	mu       sync.Mutex
	view     uint64
	seqno    uint64
	logs     map[string]map[uint64]string
	status   map[ids.TxID]client.TxStatus
	polls    map[ids.TxID]int // /node/tx calls per TxID
	commitAt map[ids.TxID]int // commit a Pending tx on this /node/tx poll
	lastBody map[string]any   // last decoded write body
	lastURL  string           // last write's path and query
	noHeader bool             // omit x-coco-txid on writes
	// receiptJSON is the body of a committed tx's receipt.
	receiptJSON func(tx ids.TxID) []byte
}

// validReceipt is a well-formed (not verifiable) receipt of tx.
func validReceipt(tx ids.TxID) []byte {
	r := receipt.New(tx.String(), receipt.LeafComponents{CommitEvidence: fakeCommitEvidence(tx)}, []byte{0xd2, 0x84})
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func newFakeNode(t *testing.T, user *x509.Certificate) *fakeNode {
	return &fakeNode{
		t: t, user: user, view: 2,
		logs:        map[string]map[uint64]string{"private": {}, "public": {}},
		status:      map[ids.TxID]client.TxStatus{},
		polls:       map[ids.TxID]int{},
		commitAt:    map[ids.TxID]int{},
		receiptJSON: validReceipt,
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeNode) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/log/{scope}", f.write)
	mux.HandleFunc("GET /app/log/{scope}", f.read)
	mux.HandleFunc("GET /node/tx", f.tx)
	mux.HandleFunc("GET /node/commit", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]string{"transaction_id": fmt.Sprintf("%d.%d", f.view, f.seqno)})
	})
	mux.HandleFunc("GET /node/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /node/network", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"service_status": "Open", "service_certificate": "PEM", "current_view": 2,
			"nodes": []map[string]any{{"node_id": "ab12", "rpc_address": "127.0.0.1:8000", "status": "Trusted", "primary": true}},
		})
	})
	mux.HandleFunc("GET /app/receipt", f.receipt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every request must arrive as the spec says: HTTP/2 over TLS 1.3
		// with the user's certificate.
		if r.ProtoMajor != 2 || r.TLS == nil || r.TLS.Version != tls.VersionTLS13 {
			writeErr(w, 400, "BadTransport", r.Proto)
			return
		}
		if len(r.TLS.PeerCertificates) == 0 || !r.TLS.PeerCertificates[0].Equal(f.user) {
			writeErr(w, 401, "InvalidAuthenticationInfo", "unknown client certificate")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (f *fakeNode) write(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	scope := r.PathValue("scope")
	table, ok := f.logs[scope]
	if !ok {
		writeErr(w, 404, "ResourceNotFound", scope)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeErr(w, 415, "UnsupportedContentType", r.Header.Get("Content-Type"))
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, 400, "InvalidInput", err.Error())
		return
	}
	f.lastBody, f.lastURL = body, r.URL.RequestURI()
	id, err := strconv.ParseUint(fmt.Sprint(body["id"]), 10, 64)
	if err != nil {
		writeErr(w, 400, "InvalidInput", "id: "+err.Error())
		return
	}
	table[id] = fmt.Sprint(body["msg"])
	f.seqno++
	tx := ids.TxID{View: ids.View(f.view), Seqno: ids.Seqno(f.seqno)}
	f.status[tx] = client.StatusPending
	if r.URL.Query().Get("wait") == "commit" {
		f.status[tx] = client.StatusCommitted
	}
	if !f.noHeader {
		w.Header().Set("x-coco-txid", tx.String())
	}
	writeJSON(w, 200, map[string]string{"transaction_id": tx.String()})
}

func (f *fakeNode) read(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
	if err != nil {
		writeErr(w, 400, "InvalidInput", "id: "+err.Error())
		return
	}
	msg, ok := f.logs[r.PathValue("scope")][id]
	if !ok {
		writeErr(w, 404, "ResourceNotFound", fmt.Sprintf("no entry %d", id))
		return
	}
	writeJSON(w, 200, map[string]string{"msg": msg})
}

func (f *fakeNode) tx(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, err := ids.ParseTxID(r.URL.Query().Get("transaction_id"))
	if err != nil {
		writeErr(w, 400, "InvalidInput", err.Error())
		return
	}
	f.polls[tx]++
	if n, ok := f.commitAt[tx]; ok && f.polls[tx] >= n {
		f.status[tx] = client.StatusCommitted
	}
	st, ok := f.status[tx]
	if !ok {
		st = client.StatusUnknown
	}
	writeJSON(w, 200, map[string]string{"transaction_id": tx.String(), "status": string(st)})
}

func (f *fakeNode) receipt(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, err := ids.ParseTxID(r.URL.Query().Get("transaction_id"))
	if err != nil {
		writeErr(w, 400, "InvalidInput", err.Error())
		return
	}
	switch f.status[tx] {
	case client.StatusCommitted:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.receiptJSON(tx))
	case client.StatusPending:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 202, map[string]string{"transaction_id": tx.String(), "status": "Pending"})
	default:
		writeErr(w, 404, "TransactionNotFound", tx.String()+" is not committed and never will be")
	}
}

// startNode serves h over HTTP/2 and TLS 1.3 with nodeCert, asking for any
// client certificate (the handler checks it, as a node maps certs to users).
func startNode(t *testing.T, h http.Handler, nodeCert tls.Certificate, maxVersion uint16) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{nodeCert},
		ClientAuth:   tls.RequireAnyClientCert,
		MaxVersion:   maxVersion,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// setup starts a fake node and a client for its user.
func setup(t *testing.T) (*fakeNode, *client.Client) {
	t.Helper()
	p := newPKI(t)
	f := newFakeNode(t, p.user.cert)
	srv := startNode(t, f.handler(), p.node.tlsCert(t), 0)
	c, err := client.New(client.Config{
		Address:        srv.Listener.Addr().String(),
		ServiceCertPEM: p.service.certPEM,
		CertPEM:        p.user.certPEM,
		KeyPEM:         p.user.keyPEM,
		Timeout:        10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return f, c
}

// fakeCommitEvidence has the shape the receipt package insists on.
func fakeCommitEvidence(tx ids.TxID) string {
	return "ce:" + tx.String() + ":" + strings.Repeat("5a", 32)
}

package node_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/node"
)

// BenchmarkServeWrite measures the node's own cost of one private write
// (auth, handler, kv commit, encryption, ledger append, Merkle leaf,
// response), without TLS and sockets: what is left when the network is
// free. Group commit runs in the background as in production.
func BenchmarkServeWrite(b *testing.B) {
	dir := b.TempDir()
	cfg := newConfig(b, dir, "")
	n, err := node.Open(cfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	raw, err := os.ReadFile(filepath.Join(dir, "user0_cert.pem"))
	if err != nil {
		b.Fatal(err)
	}
	cert, err := crypto.ParseCertPEM(raw)
	if err != nil {
		b.Fatal(err)
	}
	state := &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{cert}}
	msg := bytes.Repeat([]byte("x"), 100)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"id": %d, "msg": %q}`, next.Add(1), msg)
			req := httptest.NewRequest(http.MethodPost, "/app/log/private", bytes.NewReader([]byte(body)))
			req.TLS = state
			rec := httptest.NewRecorder()
			n.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("write: %d %s", rec.Code, rec.Body)
			}
		}
	})
}

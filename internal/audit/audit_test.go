package audit_test

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/internal/vfs"
	"github.com/cocoledger/coco/receipt"
)

// identity is a service key with its certificate and an endorsed node.
type identity struct {
	key      *ecdsa.PrivateKey
	cert     *x509.Certificate
	nodeCert *x509.Certificate
}

func newIdentity(t *testing.T) identity {
	t.Helper()
	key, _ := crypto.GenerateKey(nil)
	cert, err := crypto.SelfSign(nil, key, crypto.CertOptions{CommonName: "svc", IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, _ := crypto.GenerateKey(nil)
	nodeCert, err := crypto.Endorse(nil, nodeKey.Public(), key, cert, crypto.CertOptions{CommonName: "node"})
	if err != nil {
		t.Fatal(err)
	}
	return identity{key: key, cert: cert, nodeCert: nodeCert}
}

// writer builds a ledger by hand, so each test can break one thing.
type writer struct {
	t    *testing.T
	fs   *vfs.Mem
	l    *ledger.Ledger
	tree *merkle.Tree
	next ids.Seqno
}

func newWriter(t *testing.T) *writer {
	fs := vfs.NewMem()
	l, _, err := ledger.Open("/ledger", ledger.Options{FS: fs, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return &writer{t: t, fs: fs, l: l, tree: merkle.New(), next: 1}
}

func (w *writer) append(e *ledger.Entry) {
	w.t.Helper()
	e.View, e.Seqno = 1, w.next
	if err := w.l.Append(e); err != nil {
		w.t.Fatal(err)
	}
	leaf := e.Leaf()
	w.tree.Append(merkle.LeafHash(leaf[:]))
	w.next++
}

func (w *writer) tx(table kv.MapName, key, value string) {
	w.t.Helper()
	store := kv.NewStore()
	tx := store.Begin()
	tx.Put(table, []byte(key), []byte(value))
	w.append(&ledger.Entry{Kind: ledger.KindTx, Public: tx.WriteSet().AppendBinary(nil)})
}

func (w *writer) genesis(id identity) {
	info, _ := json.Marshal(map[string]string{"cert": string(crypto.CertPEM(id.cert)), "status": "Open"})
	w.tx(app.ServiceInfoTable, "service", string(info))
}

// sign appends a signature entry; mutate may break the record.
func (w *writer) sign(signer identity, mutate func(*ledger.SignatureRecord)) {
	w.t.Helper()
	root := w.tree.Root()
	signed, err := receipt.SignRoot(nil, signer.key, root)
	if err != nil {
		w.t.Fatal(err)
	}
	rec := ledger.SignatureRecord{View: 1, Seqno: w.next, TreeSize: uint64(w.next) - 1, Root: root,
		SignedRoot: signed, NodeID: "node", NodeCert: signer.nodeCert.Raw}
	if mutate != nil {
		mutate(&rec)
	}
	pub, err := rec.Marshal()
	if err != nil {
		w.t.Fatal(err)
	}
	w.append(&ledger.Entry{Kind: ledger.KindSignature, Public: pub})
}

func (w *writer) close() {
	w.t.Helper()
	if _, err := w.l.Sync(); err != nil {
		w.t.Fatal(err)
	}
	if err := w.l.Close(); err != nil {
		w.t.Fatal(err)
	}
}

func TestVerifyGoodLedger(t *testing.T) {
	svc := newIdentity(t)
	w := newWriter(t)
	w.genesis(svc)
	w.tx("public:records", "a", "1")
	w.sign(svc, nil)
	w.tx("public:records", "b", "2")
	w.sign(svc, nil)
	w.tx("public:records", "c", "3")
	w.close()
	rep, err := audit.Verify(w.fs, "/ledger", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 6 || rep.Signatures != 2 || rep.LastSigned != (ids.TxID{View: 1, Seqno: 5}) || rep.Unsigned != 1 {
		t.Fatalf("report %+v", rep)
	}
	if !rep.ServiceCert.Equal(svc.cert) {
		t.Fatal("service cert not taken from genesis")
	}
	if _, err := audit.Verify(w.fs, "/ledger", svc.cert); err != nil {
		t.Fatalf("with the pinned cert: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	svc, other := newIdentity(t), newIdentity(t)
	cases := map[string]struct {
		build func(w *writer)
		pin   *x509.Certificate
		want  string
	}{
		"root not of these entries": {func(w *writer) {
			w.genesis(svc)
			w.sign(svc, func(r *ledger.SignatureRecord) { r.Root[0] ^= 1 })
		}, nil, "differs from the root"},
		"signed by another key": {func(w *writer) {
			w.genesis(svc)
			w.sign(other, nil)
		}, nil, "does not verify with the service key"},
		"node not endorsed": {func(w *writer) {
			w.genesis(svc)
			w.sign(identity{key: svc.key, cert: svc.cert, nodeCert: other.nodeCert}, nil)
		}, nil, "not endorsed"},
		"another service's ledger": {func(w *writer) {
			w.genesis(svc)
			w.sign(svc, nil)
		}, other.cert, "another service"},
		"no genesis identity": {func(w *writer) {
			w.tx("public:records", "a", "1")
			w.sign(svc, nil)
		}, nil, "does not record the service identity"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWriter(t)
			tc.build(w)
			w.close()
			_, err := audit.Verify(w.fs, "/ledger", tc.pin)
			var aerr *audit.Error
			if !errors.As(err, &aerr) || !errors.Is(err, audit.ErrAudit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an *audit.Error mentioning %q", err, tc.want)
			}
			if aerr.File == "" || aerr.Seqno == 0 {
				t.Fatalf("error does not locate the problem: %+v", aerr)
			}
		})
	}
}

func TestVerifyEmptyDir(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/ledger", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(fs, "/ledger", nil); !errors.Is(err, audit.ErrAudit) {
		t.Fatalf("empty ledger: %v", err)
	}
}

// Raft's configuration entries may precede the genesis transaction and sit
// between transactions; they are covered by signatures like any entry.
func TestVerifyRaftEntries(t *testing.T) {
	svc := newIdentity(t)
	w := newWriter(t)
	w.append(&ledger.Entry{Kind: ledger.KindRaft, Public: []byte{ledger.RaftEmpty}})
	w.genesis(svc)
	w.append(&ledger.Entry{Kind: ledger.KindRaft, Public: []byte{ledger.RaftEmpty}})
	w.sign(svc, nil)
	w.close()
	rep, err := audit.Verify(w.fs, "/ledger", svc.cert)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 4 || rep.Signatures != 1 || rep.Unsigned != 0 {
		t.Fatalf("report %+v", rep)
	}
}

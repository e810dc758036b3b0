package audit

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/internal/vfs"
	"github.com/cocoledger/coco/receipt"
)

// ErrAudit is wrapped by every audit failure.
var ErrAudit = errors.New("audit: ledger does not verify")

// Error locates an audit failure.
type Error struct {
	File   string
	Offset int64
	Seqno  ids.Seqno
	Reason string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("audit: %s at offset %d (seqno %d): %s", e.File, e.Offset, e.Seqno, e.Reason)
}

// Unwrap returns ErrAudit and the underlying cause.
func (e *Error) Unwrap() []error { return []error{ErrAudit, e.Err} }

// Report summarises a verified ledger.
type Report struct {
	Entries    uint64
	Signatures uint64
	// LastSigned is the TxID of the last signature entry: everything up to
	// it is proven.
	LastSigned ids.TxID
	// Unsigned counts entries after the last signature (not yet provable).
	Unsigned uint64
	// GovRequests counts the signed governance requests verified against
	// the members of their time.
	GovRequests uint64
	// NodeEvidence counts the nodes' attestation evidence bundles verified
	// again (each at the time the service verified it).
	NodeEvidence uint64
	ServiceCert  *x509.Certificate
}

// Verify audits the ledger in dir. serviceCert may be nil (trust the
// genesis transaction).
func Verify(fsys vfs.FS, dir string, serviceCert *x509.Certificate) (*Report, error) {
	return verify(fsys, dir, serviceCert, nil)
}

// GovHistory audits the ledger in dir, as Verify does, and returns its
// governance history: every signed request, verified, and every change of
// a proposal's state, in ledger order.
func GovHistory(fsys vfs.FS, dir string, serviceCert *x509.Certificate) ([]GovEvent, *Report, error) {
	var events []GovEvent
	rep, err := verify(fsys, dir, serviceCert, func(e GovEvent) { events = append(events, e) })
	return events, rep, err
}

func verify(fsys vfs.FS, dir string, serviceCert *x509.Certificate, onGov func(GovEvent)) (*Report, error) {
	rep := &Report{ServiceCert: serviceCert}
	var govs *govState
	tree := merkle.New()
	sawTx := false
	err := ledger.ScanDir(fsys, dir, func(pos ledger.Position, e *ledger.Entry) error {
		fail := func(err error, format string, args ...any) error {
			return &Error{File: pos.File, Offset: pos.Offset, Seqno: e.Seqno, Reason: fmt.Sprintf(format, args...), Err: err}
		}
		rep.Entries++
		switch e.Kind {
		case ledger.KindTx:
			ws, err := kv.DecodeWriteSet(e.Public)
			if err != nil {
				return fail(err, "public write set does not decode: %v", err)
			}
			// The genesis transaction is the first transaction; raft's
			// bootstrap configuration entries may come before it.
			if !sawTx {
				sawTx = true
				if err := rep.checkGenesis(ws); err != nil {
					return fail(err, "genesis: %v", err)
				}
				if govs, err = newGovState(rep.ServiceCert, onGov); err != nil {
					return fail(err, "%v", err)
				}
			}
			n, err := govs.check(ids.TxID{View: e.View, Seqno: e.Seqno}, ws)
			if err != nil {
				return fail(err, "%v", err)
			}
			rep.GovRequests += uint64(n)
			rep.NodeEvidence = govs.nodes
			rep.Unsigned++
		case ledger.KindRaft:
			// Consensus entries (configuration changes, a new leader's
			// empty entry) carry no write set; their leaf is covered like
			// any other.
			rep.Unsigned++
		case ledger.KindSignature:
			rec, err := ledger.UnmarshalSignatureRecord(e.Public)
			if err != nil {
				return fail(err, "signature record does not decode: %v", err)
			}
			if err := rep.checkSignature(e, rec, tree); err != nil {
				return fail(err, "signature: %v", err)
			}
			rep.Signatures++
			rep.LastSigned = ids.TxID{View: e.View, Seqno: e.Seqno}
			rep.Unsigned = 0
		default:
			return fail(nil, "unknown entry kind %d", e.Kind)
		}
		leaf := e.Leaf()
		tree.Append(merkle.LeafHash(leaf[:]))
		return nil
	})
	if err != nil {
		var cerr *ledger.CorruptError
		if errors.As(err, &cerr) {
			return rep, &Error{File: cerr.File, Offset: cerr.Offset, Seqno: cerr.Seqno, Reason: cerr.Reason, Err: err}
		}
		if !errors.Is(err, ErrAudit) {
			err = fmt.Errorf("%w: %w", ErrAudit, err)
		}
		return rep, err
	}
	if rep.Entries == 0 {
		return rep, fmt.Errorf("%w: %s holds no ledger entries", ErrAudit, dir)
	}
	return rep, nil
}

func (rep *Report) checkGenesis(ws *kv.WriteSet) error {
	for _, m := range ws.Maps {
		if m.Name != app.ServiceInfoTable {
			continue
		}
		for _, w := range m.Writes {
			var info struct {
				Cert string `json:"cert"`
			}
			if err := json.Unmarshal(w.Value, &info); err != nil {
				return fmt.Errorf("service info: %w", err)
			}
			cert, err := crypto.ParseCertPEM([]byte(info.Cert))
			if err != nil {
				return fmt.Errorf("service info: %w", err)
			}
			if rep.ServiceCert == nil {
				rep.ServiceCert = cert
				return nil
			}
			if !rep.ServiceCert.Equal(cert) {
				return errors.New("the ledger belongs to another service: its genesis names a different service certificate")
			}
			return nil
		}
	}
	return errors.New("the first transaction does not record the service identity")
}

func (rep *Report) checkSignature(e *ledger.Entry, rec *ledger.SignatureRecord, tree *merkle.Tree) error {
	if rep.ServiceCert == nil {
		return errors.New("no service certificate to verify against (no genesis seen and none given)")
	}
	if rec.Seqno != e.Seqno || rec.View != e.View {
		return fmt.Errorf("record names %d.%d but sits in entry %d.%d", rec.View, rec.Seqno, e.View, e.Seqno)
	}
	if rec.TreeSize != uint64(e.Seqno)-1 || tree.Size() != rec.TreeSize {
		return fmt.Errorf("signs a tree of %d leaves, want %d", rec.TreeSize, uint64(e.Seqno)-1)
	}
	root := tree.Root()
	if root != rec.Root {
		return fmt.Errorf("recorded root %x differs from the root %x recomputed from the entries", rec.Root, root)
	}
	if err := receipt.VerifyRoot(rec.SignedRoot, root, rep.ServiceCert.PublicKey); err != nil {
		return fmt.Errorf("COSE signature over the root does not verify with the service key: %w", err)
	}
	nodeCert, err := x509.ParseCertificate(rec.NodeCert)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	if err := nodeCert.CheckSignatureFrom(rep.ServiceCert); err != nil {
		return fmt.Errorf("node certificate is not endorsed by the service: %w", err)
	}
	return nil
}

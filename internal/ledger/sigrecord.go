package ledger

import (
	"bytes"
	"fmt"

	"github.com/cocoledger/coco/internal/detcbor"
	"github.com/cocoledger/coco/internal/ids"
)

// SignatureRecordVersion is the value of key 0 in every SignatureRecord this
// package writes and the only one it reads.
const SignatureRecordVersion = 1

// SignatureRecord is the Public part of a KindSignature entry: the primary's
// signature over the Merkle root of every entry before it.
type SignatureRecord struct {
	View  ids.View  // of the signature entry itself
	Seqno ids.Seqno // of the signature entry itself
	// TreeSize is the number of leaves signed: Seqno-1, every entry before
	// this one.
	TreeSize uint64
	// Root is the RFC 9162 root over leaves 1..TreeSize.
	Root [32]byte
	// SignedRoot is a COSE_Sign1 over Root (detached payload), made by the
	// receipt package.
	SignedRoot []byte
	NodeID     string // id of the signing node
	NodeCert   []byte // DER of the signing node's certificate, endorsed by the service
}

// sigRecordWire is the CBOR map; keys are small integers (keyasint) so the
// encoding is compact and the key order fixed by Core Deterministic Encoding.
type sigRecordWire struct {
	Version    uint64 `cbor:"0,keyasint"`
	View       uint64 `cbor:"1,keyasint"`
	Seqno      uint64 `cbor:"2,keyasint"`
	TreeSize   uint64 `cbor:"3,keyasint"`
	Root       []byte `cbor:"4,keyasint"`
	SignedRoot []byte `cbor:"5,keyasint"`
	NodeID     string `cbor:"6,keyasint"`
	NodeCert   []byte `cbor:"7,keyasint"`
}

var (
	sigEnc = detcbor.EncMode(false)
	sigDec = detcbor.DecMode(detcbor.Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
)

func (r *SignatureRecord) validate() error {
	switch {
	case r.View == 0:
		return fmt.Errorf("%w: view 0", ErrBadSignatureRecord)
	case r.Seqno == 0:
		return fmt.Errorf("%w: seqno 0", ErrBadSignatureRecord)
	case r.TreeSize != uint64(r.Seqno)-1:
		return fmt.Errorf("%w: tree size %d, want seqno-1 = %d", ErrBadSignatureRecord, r.TreeSize, r.Seqno-1)
	case len(r.SignedRoot) == 0:
		return fmt.Errorf("%w: empty signed root", ErrBadSignatureRecord)
	case r.NodeID == "":
		return fmt.Errorf("%w: empty node id", ErrBadSignatureRecord)
	case len(r.NodeCert) == 0:
		return fmt.Errorf("%w: empty node certificate", ErrBadSignatureRecord)
	}
	return nil
}

// Marshal returns the deterministic CBOR encoding of r. It fails if r is not
// well formed: view or seqno 0, TreeSize ≠ Seqno-1, or an empty SignedRoot,
// NodeID or NodeCert.
func (r *SignatureRecord) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := sigEnc.Marshal(sigRecordWire{
		Version:    SignatureRecordVersion,
		View:       uint64(r.View),
		Seqno:      uint64(r.Seqno),
		TreeSize:   r.TreeSize,
		Root:       r.Root[:],
		SignedRoot: r.SignedRoot,
		NodeID:     r.NodeID,
		NodeCert:   r.NodeCert,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignatureRecord, err)
	}
	return b, nil
}

// UnmarshalSignatureRecord decodes b strictly: it must be exactly the
// encoding Marshal produces for the record it holds (so unknown or missing
// keys, duplicate keys, non-canonical forms, tags, indefinite lengths and
// trailing bytes are all rejected), of version SignatureRecordVersion, and
// pass Marshal's checks. The returned slices do not alias b. Errors wrap
// ErrBadSignatureRecord.
func UnmarshalSignatureRecord(b []byte) (*SignatureRecord, error) {
	var w sigRecordWire
	if err := sigDec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignatureRecord, err)
	}
	if w.Version != SignatureRecordVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrBadSignatureRecord, w.Version)
	}
	if len(w.Root) != 32 {
		return nil, fmt.Errorf("%w: root is %d bytes, want 32", ErrBadSignatureRecord, len(w.Root))
	}
	r := &SignatureRecord{
		View:       ids.View(w.View),
		Seqno:      ids.Seqno(w.Seqno),
		TreeSize:   w.TreeSize,
		SignedRoot: w.SignedRoot,
		NodeID:     w.NodeID,
		NodeCert:   w.NodeCert,
	}
	copy(r.Root[:], w.Root)
	// Re-encoding is the simplest complete check of canonical form: it
	// rejects every encoding the decoder tolerates but Marshal would never
	// produce (missing keys, unsorted keys, non-minimal integer or length
	// encodings), so each record has exactly one valid encoding.
	canon, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrBadSignatureRecord)
	}
	return r, nil
}

package receipt

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/rfc6962"
)

// COSE header labels and values from RFC 9942 (COSE Receipts).
const (
	// HeaderLabelVDS is the protected header naming the verifiable data
	// structure the root belongs to.
	HeaderLabelVDS = 395
	// HeaderLabelVDP is the unprotected header carrying the proofs, a map
	// from proof type to a list of proofs.
	HeaderLabelVDP = 396
	// VDSRFC9162SHA256 is the vds value of an RFC 9162 tree with SHA-256.
	VDSRFC9162SHA256 = 1
	// InclusionProofsLabel is the vdp map key of the list of inclusion proofs.
	InclusionProofsLabel = -1
)

// Decoder limits. A receipt is a few hundred bytes plus 35 bytes per path
// element, and a path never has more than 64 elements (a tree of 2^64
// leaves), so these bounds reject nothing legitimate while capping what
// hostile input can make the decoder allocate.
const (
	// MaxReceiptSize bounds an encoded COSE receipt or signed root.
	MaxReceiptSize = 64 << 10
	// MaxPathLength bounds the number of hashes in an inclusion path.
	MaxPathLength = 64
	// MaxJSONSize bounds the JSON form accepted by ParseJSON: a base64
	// MaxReceiptSize receipt plus generous room for the other fields.
	MaxJSONSize = 128 << 10
)

// Sentinel errors; every error this package returns matches one of them
// under errors.Is and carries the detail in its message.
var (
	// ErrMalformed: the input is not a well-formed receipt of this profile
	// (bad CBOR or JSON, wrong types, missing fields, over the size limits).
	ErrMalformed = errors.New("receipt: malformed")
	// ErrUnsupported: well-formed, but uses an algorithm, verifiable data
	// structure, key type or critical header this package does not implement.
	ErrUnsupported = errors.New("receipt: unsupported")
	// ErrKeyMismatch: the receipt was not issued under the given key: its
	// kid or alg does not fit the service certificate's public key.
	ErrKeyMismatch = errors.New("receipt: key mismatch")
	// ErrProof: the inclusion proof's shape is impossible for its tree size
	// and leaf index, so it cannot prove anything.
	ErrProof = errors.New("receipt: invalid inclusion proof")
	// ErrSignature: the signature does not verify over the root recomputed
	// from the leaf and the proof. The leaf components, the proof or the
	// signature were altered, or the leaf is not in the signed tree.
	ErrSignature = errors.New("receipt: signature verification failed")
	// ErrTxID: the receipt's transaction_id is not the transaction whose
	// leaf the proof places in the tree.
	ErrTxID = errors.New("receipt: transaction id does not match the proof")
)

// ProofError describes an inclusion proof whose shape does not fit its
// tree size and leaf index. It matches ErrProof.
type ProofError struct {
	TreeSize  uint64
	LeafIndex uint64
	Reason    string
}

func (e *ProofError) Error() string {
	return fmt.Sprintf("%v (tree_size %d, leaf_index %d): %s", ErrProof, e.TreeSize, e.LeafIndex, e.Reason)
}

// Unwrap lets errors.Is(err, ErrProof) match.
func (e *ProofError) Unwrap() error { return ErrProof }

// LeafComponents are what a Coco ledger leaf is made of. The leaf is their
// concatenation with the commit evidence hashed, so that a receipt can be
// checked against the evidence while the ledger stores only its digest.
type LeafComponents struct {
	// WriteSetDigest is the SHA-256 of the transaction's write set.
	WriteSetDigest [32]byte
	// CommitEvidence is the per-transaction secret revealed once the
	// transaction committed; without it no receipt can be checked.
	CommitEvidence string
	// ClaimsDigest binds an application claim; all zeros when none.
	ClaimsDigest [32]byte
}

// LeafSize is the length of a Coco Merkle leaf.
const LeafSize = 3 * sha256.Size

// Leaf returns write_set_digest ‖ SHA-256(commit_evidence) ‖ claims_digest.
func (c LeafComponents) Leaf() [LeafSize]byte {
	var b [LeafSize]byte
	copy(b[:32], c.WriteSetDigest[:])
	ce := sha256.Sum256([]byte(c.CommitEvidence))
	copy(b[32:64], ce[:])
	copy(b[64:], c.ClaimsDigest[:])
	return b
}

// LeafHash returns the RFC 9162 leaf hash SHA-256(0x00 ‖ Leaf()).
func (c LeafComponents) LeafHash() [32]byte {
	leaf := c.Leaf()
	return [32]byte(rfc6962.DefaultHasher.HashLeaf(leaf[:]))
}

// decMode decodes every CBOR structure this package reads. Besides the size
// limit checked before decoding, it caps nesting and element counts and
// refuses indefinite lengths and duplicate map keys, so one input has one
// meaning and a bounded cost.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		IntDec:           cbor.IntDecConvertSignedOrFail,
		MaxNestedLevels:  16,
		MaxArrayElements: 1024,
		MaxMapPairs:      256,
	}.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return dm
}()

// encMode encodes the inclusion proof deterministically (RFC 8949 §4.2.1).
var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // constant options
	}
	return em
}()

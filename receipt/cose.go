package receipt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/veraison/go-cose"
)

// algorithmFor returns the COSE algorithm a service key of this type signs
// with. Only ECDSA is supported: it is what the service identity uses, and
// accepting fewer algorithms leaves fewer ways to be confused.
func algorithmFor(pub crypto.PublicKey) (cose.Algorithm, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return 0, fmt.Errorf("%w: service key is %T, want an ECDSA P-256, P-384 or P-521 key", ErrUnsupported, pub)
	}
	switch k.Curve {
	case elliptic.P256():
		return cose.AlgorithmES256, nil
	case elliptic.P384():
		return cose.AlgorithmES384, nil
	case elliptic.P521():
		return cose.AlgorithmES512, nil
	}
	return 0, fmt.Errorf("%w: service key is on curve %s, want P-256, P-384 or P-521", ErrUnsupported, k.Curve.Params().Name)
}

// KeyID returns the kid Coco puts in receipts: the SHA-256 of the DER
// SubjectPublicKeyInfo of the service public key.
func KeyID(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: cannot encode service public key: %v", ErrUnsupported, err)
	}
	return sha256.Sum256(der), nil
}

// SignRoot signs a Merkle root with the service key. The result is an
// encoded COSE_Sign1_Tagged with protected header {alg, kid, vds}, an empty
// unprotected header and a detached payload (nil); the root is what is
// signed. One signed root per signature transaction serves the receipts of
// every transaction under it, through Attach.
func SignRoot(rand io.Reader, key crypto.Signer, root [32]byte) ([]byte, error) {
	alg, err := algorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			Protected: cose.ProtectedHeader{
				cose.HeaderLabelAlgorithm: alg,
				cose.HeaderLabelKeyID:     kid[:],
				int64(HeaderLabelVDS):     int64(VDSRFC9162SHA256),
			},
			Unprotected: cose.UnprotectedHeader{},
		},
		Payload: root[:],
	}
	if err := msg.Sign(rand, nil, signer); err != nil {
		return nil, fmt.Errorf("receipt: signing root: %w", err)
	}
	msg.Payload = nil // detached: the verifier recomputes the root
	out, err := msg.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("receipt: encoding signed root: %w", err)
	}
	return out, nil
}

// signed is a decoded COSE_Sign1 that passed the profile checks.
type signed struct {
	msg cose.Sign1Message
	alg cose.Algorithm
	kid []byte // nil when the protected header has none
}

// understoodCritical are the protected labels this package processes, the
// only ones a crit header may list (RFC 9052 §3.1).
var understoodCritical = map[int64]bool{
	cose.HeaderLabelAlgorithm: true,
	cose.HeaderLabelKeyID:     true,
	HeaderLabelVDS:            true,
}

// decodeSigned decodes a signed root or a receipt and checks everything
// that does not need the key or the proof: size and CBOR limits, a tagged
// COSE_Sign1, a detached payload, a supported alg, vds = RFC9162_SHA256 and
// no critical header it does not understand.
func decodeSigned(b []byte) (*signed, error) {
	if len(b) > MaxReceiptSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d byte limit", ErrMalformed, len(b), MaxReceiptSize)
	}
	// go-cose's own decoder has no limits; this pass enforces ours before
	// it allocates anything.
	if err := decMode.Wellformed(b); err != nil {
		return nil, fmt.Errorf("%w: not well-formed CBOR within limits: %v", ErrMalformed, err)
	}
	var s signed
	if err := s.msg.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("%w: not a COSE_Sign1_Tagged (CBOR tag 18) message: %v", ErrMalformed, err)
	}
	if s.msg.Payload != nil {
		return nil, fmt.Errorf("%w: payload must be detached (CBOR nil), found %d bytes", ErrMalformed, len(s.msg.Payload))
	}
	h := s.msg.Headers.Protected
	alg, err := h.Algorithm()
	if err != nil {
		return nil, fmt.Errorf("%w: protected header alg (1): %v", ErrMalformed, err)
	}
	switch alg {
	case cose.AlgorithmES256, cose.AlgorithmES384, cose.AlgorithmES512:
		s.alg = alg
	default:
		return nil, fmt.Errorf("%w: alg %v, want ES256, ES384 or ES512", ErrUnsupported, alg)
	}
	vds, ok := h[int64(HeaderLabelVDS)]
	if !ok {
		return nil, fmt.Errorf("%w: protected header has no vds (%d)", ErrMalformed, HeaderLabelVDS)
	}
	if v, ok := vds.(int64); !ok || v != VDSRFC9162SHA256 {
		return nil, fmt.Errorf("%w: vds (%d) is %v, want %d (RFC9162_SHA256)", ErrUnsupported, HeaderLabelVDS, vds, VDSRFC9162SHA256)
	}
	if v, ok := h[cose.HeaderLabelKeyID]; ok {
		kid, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("%w: protected header kid (4) is %T, want a byte string", ErrMalformed, v)
		}
		s.kid = kid
	}
	crit, err := h.Critical()
	if err != nil {
		return nil, fmt.Errorf("%w: protected header crit (2): %v", ErrMalformed, err)
	}
	for _, label := range crit {
		if l, ok := label.(int64); !ok || !understoodCritical[l] {
			return nil, fmt.Errorf("%w: critical header parameter %v is not understood", ErrUnsupported, label)
		}
	}
	return &s, nil
}

// checkKey verifies that s was issued under pub: the alg fits the key type
// and the kid, when present, is pub's key id.
func (s *signed) checkKey(pub crypto.PublicKey) error {
	want, err := algorithmFor(pub)
	if err != nil {
		return err
	}
	if s.alg != want {
		return fmt.Errorf("%w: receipt alg is %v but the service key needs %v", ErrKeyMismatch, s.alg, want)
	}
	if s.kid == nil {
		return nil
	}
	kid, err := KeyID(pub)
	if err != nil {
		return err
	}
	if !bytes.Equal(s.kid, kid[:]) {
		return fmt.Errorf("%w: receipt kid is %x but the service key's is %x: signed by another key, or the wrong service certificate", ErrKeyMismatch, s.kid, kid)
	}
	return nil
}

// verifySignature checks the COSE signature over the detached root.
func (s *signed) verifySignature(pub crypto.PublicKey, root []byte) error {
	verifier, err := cose.NewVerifier(s.alg, pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeyMismatch, err)
	}
	s.msg.Payload = root
	defer func() { s.msg.Payload = nil }()
	if err := s.msg.Verify(nil, verifier); err != nil {
		return fmt.Errorf("%w: over root %x: %v", ErrSignature, root, err)
	}
	return nil
}

// VerifyRoot checks that signedRoot (as made by SignRoot) is a signature by
// pub over root. Any vdp header present is ignored: it is not signed.
func VerifyRoot(signedRoot []byte, root [32]byte, pub crypto.PublicKey) error {
	s, err := decodeSigned(signedRoot)
	if err != nil {
		return err
	}
	if err := s.checkKey(pub); err != nil {
		return err
	}
	return s.verifySignature(pub, root[:])
}

// inclusionProof is the RFC 9942 RFC9162_SHA256 inclusion proof,
// [tree_size, leaf_index, inclusion_path].
type inclusionProof struct {
	_         struct{} `cbor:",toarray"`
	TreeSize  uint64
	LeafIndex uint64
	Path      [][]byte
}

// inclusionPathLen is the number of hashes in the RFC 9162 §2.1.3.2 path
// for index in a tree of size leaves (index < size): one per level below the
// point where the paths to index and to size-1 diverge, plus one per left
// sibling above it.
func inclusionPathLen(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	return inner + bits.OnesCount64(index>>inner)
}

// checkShape reports a proof that cannot be an RFC 9162 inclusion proof.
func checkShape(treeSize, leafIndex uint64, pathLen int) error {
	fail := func(format string, args ...any) error {
		return &ProofError{TreeSize: treeSize, LeafIndex: leafIndex, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case treeSize == 0:
		return fail("tree_size must be at least 1")
	case leafIndex >= treeSize:
		return fail("leaf_index must be below tree_size")
	case pathLen != inclusionPathLen(leafIndex, treeSize):
		return fail("inclusion path has %d hashes, want %d", pathLen, inclusionPathLen(leafIndex, treeSize))
	}
	return nil
}

// Attach turns a signed root into the COSE receipt of one leaf: the same
// message, with the leaf's inclusion proof added as the vdp unprotected
// header, {-1: [bstr .cbor [treeSize, leafIndex, path]]}. leafIndex is
// 0-based, path is ordered from the leaf up, as merkle.Tree.InclusionProof
// returns it. The signature is untouched, since the unprotected header is not
// signed; Attach does not check it.
func Attach(signedRoot []byte, treeSize, leafIndex uint64, path [][32]byte) ([]byte, error) {
	s, err := decodeSigned(signedRoot)
	if err != nil {
		return nil, err
	}
	if err := checkShape(treeSize, leafIndex, len(path)); err != nil {
		return nil, err
	}
	u := s.msg.Headers.Unprotected
	if _, ok := u[int64(HeaderLabelVDP)]; ok {
		return nil, fmt.Errorf("%w: signed root already carries a vdp (%d) header", ErrMalformed, HeaderLabelVDP)
	}
	p := inclusionProof{TreeSize: treeSize, LeafIndex: leafIndex, Path: make([][]byte, len(path))}
	for i := range path {
		p.Path[i] = path[i][:]
	}
	encoded, err := encMode.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("receipt: encoding inclusion proof: %w", err)
	}
	u[int64(HeaderLabelVDP)] = map[int64]any{InclusionProofsLabel: [][]byte{encoded}}
	s.msg.Headers.RawUnprotected = nil // re-encode from the map
	out, err := s.msg.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("receipt: encoding receipt: %w", err)
	}
	return out, nil
}

// decodeProof extracts the single inclusion proof from the vdp header.
func decodeProof(rawUnprotected []byte) (*inclusionProof, error) {
	var header map[any]cbor.RawMessage
	if err := decMode.Unmarshal(rawUnprotected, &header); err != nil {
		return nil, fmt.Errorf("%w: unprotected header: %v", ErrMalformed, err)
	}
	rawVDP, ok := header[int64(HeaderLabelVDP)]
	if !ok {
		return nil, fmt.Errorf("%w: unprotected header has no vdp (%d): this is a signed root, not a receipt", ErrMalformed, HeaderLabelVDP)
	}
	var vdp map[any]cbor.RawMessage
	if err := decMode.Unmarshal(rawVDP, &vdp); err != nil {
		return nil, fmt.Errorf("%w: vdp (%d) must be a map: %v", ErrMalformed, HeaderLabelVDP, err)
	}
	rawProofs, ok := vdp[int64(InclusionProofsLabel)]
	if !ok {
		return nil, fmt.Errorf("%w: vdp has no inclusion proofs (%d)", ErrMalformed, InclusionProofsLabel)
	}
	var proofs []cbor.RawMessage
	if err := decMode.Unmarshal(rawProofs, &proofs); err != nil {
		return nil, fmt.Errorf("%w: inclusion proofs (%d) must be an array: %v", ErrMalformed, InclusionProofsLabel, err)
	}
	if len(proofs) != 1 {
		return nil, fmt.Errorf("%w: want exactly one inclusion proof, found %d", ErrMalformed, len(proofs))
	}
	encoded, err := decodeBstr(proofs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: inclusion proof: %v", ErrMalformed, err)
	}
	var raw struct {
		_         struct{} `cbor:",toarray"`
		TreeSize  uint64
		LeafIndex uint64
		Path      []cbor.RawMessage
	}
	if err := decMode.Unmarshal(encoded, &raw); err != nil {
		return nil, fmt.Errorf("%w: inclusion proof must be [tree_size: uint, leaf_index: uint, inclusion_path: [* bstr]]: %v", ErrMalformed, err)
	}
	p := &inclusionProof{TreeSize: raw.TreeSize, LeafIndex: raw.LeafIndex, Path: make([][]byte, len(raw.Path))}
	if len(raw.Path) > MaxPathLength {
		return nil, &ProofError{TreeSize: p.TreeSize, LeafIndex: p.LeafIndex, Reason: fmt.Sprintf("inclusion path has %d hashes, more than the %d any tree can need", len(raw.Path), MaxPathLength)}
	}
	for i, el := range raw.Path {
		h, err := decodeBstr(el)
		if err != nil {
			return nil, fmt.Errorf("%w: inclusion path element %d: %v", ErrMalformed, i, err)
		}
		if len(h) != sha256.Size {
			return nil, &ProofError{TreeSize: p.TreeSize, LeafIndex: p.LeafIndex, Reason: fmt.Sprintf("inclusion path element %d is %d bytes, want %d", i, len(h), sha256.Size)}
		}
		p.Path[i] = h
	}
	if err := checkShape(p.TreeSize, p.LeafIndex, len(p.Path)); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeBstr decodes a CBOR byte string, refusing the other types (an array
// of small integers, text) that would also decode into []byte.
func decodeBstr(raw cbor.RawMessage) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != 2 {
		return nil, errors.New("want a CBOR byte string")
	}
	var b []byte
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	return b, nil
}

// Verify checks a COSE receipt for the leaf described by leaf against the
// public key of serviceCert. It succeeds only if the receipt is a
// well-formed RFC 9942 receipt with one RFC 9162 inclusion proof, issued
// under that key, and the root recomputed from the leaf and the proof is
// exactly the root the service signed. Only the certificate's public key is
// used: its validity period, issuer and extensions are the caller's concern.
func Verify(coseReceipt []byte, leaf LeafComponents, serviceCert *x509.Certificate) error {
	if serviceCert == nil {
		return fmt.Errorf("%w: no service certificate given", ErrKeyMismatch)
	}
	_, err := verify(coseReceipt, leaf.LeafHash(), serviceCert.PublicKey)
	return err
}

// verify is Verify on a leaf hash and public key; it returns the proof so
// that callers can check where the leaf is.
func verify(coseReceipt []byte, leafHash [32]byte, pub crypto.PublicKey) (*inclusionProof, error) {
	s, err := decodeSigned(coseReceipt)
	if err != nil {
		return nil, err
	}
	if err := s.checkKey(pub); err != nil {
		return nil, err
	}
	p, err := decodeProof(s.msg.Headers.RawUnprotected)
	if err != nil {
		return nil, err
	}
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, leafHash[:], p.Path)
	if err != nil {
		// checkShape has already refused every proof this can reject.
		return nil, &ProofError{TreeSize: p.TreeSize, LeafIndex: p.LeafIndex, Reason: err.Error()}
	}
	if err := s.verifySignature(pub, root); err != nil {
		return nil, err
	}
	return p, nil
}

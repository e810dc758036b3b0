package receipt

// An RFC 9942 verifier written from the specification with go-cose, cbor and
// transparency-dev/merkle only: it reads headers by label and shares no code
// with this package, so it stands for "any generic COSE receipt verifier".
// Our receipts must pass it, and receipts it would build must pass ours.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/veraison/go-cose"
)

func genericVerify(receipt, leaf []byte, pub crypto.PublicKey) error {
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(receipt); err != nil {
		return fmt.Errorf("COSE_Sign1_Tagged: %w", err)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return err
	}
	if vds := msg.Headers.Protected[int64(395)]; vds != int64(1) {
		return fmt.Errorf("vds = %v, want RFC9162_SHA256", vds)
	}
	vdp, ok := msg.Headers.Unprotected[int64(396)].(map[any]any)
	if !ok {
		return errors.New("no vdp map")
	}
	proofs, ok := vdp[int64(-1)].([]any)
	if !ok || len(proofs) != 1 {
		return fmt.Errorf("want one inclusion proof, have %v", vdp[int64(-1)])
	}
	encoded, ok := proofs[0].([]byte)
	if !ok {
		return errors.New("inclusion proof is not a bstr")
	}
	var fields []any
	if err := cbor.Unmarshal(encoded, &fields); err != nil {
		return err
	}
	if len(fields) != 3 {
		return fmt.Errorf("inclusion proof has %d fields", len(fields))
	}
	size, ok1 := fields[0].(uint64)
	index, ok2 := fields[1].(uint64)
	rawPath, ok3 := fields[2].([]any)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("inclusion proof types: %T %T %T", fields[0], fields[1], fields[2])
	}
	path := make([][]byte, len(rawPath))
	for i, e := range rawPath {
		if path[i], ok = e.([]byte); !ok {
			return fmt.Errorf("path element %d is %T", i, e)
		}
	}
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, index, size, rfc6962.DefaultHasher.HashLeaf(leaf), path)
	if err != nil {
		return err
	}
	verifier, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return err
	}
	msg.Payload = root
	return msg.Verify(nil, verifier)
}

// genericLeaf builds the 96-byte leaf from the specification.
func genericLeaf(c LeafComponents) []byte {
	ce := sha256.Sum256([]byte(c.CommitEvidence))
	return bytes.Join([][]byte{c.WriteSetDigest[:], ce[:], c.ClaimsDigest[:]}, nil)
}

func TestGenericVerifierAcceptsOurReceipts(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 20)
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		svc := newService(t, generateKey(t, curve))
		tree := testLedger(40)
		for _, size := range []uint64{1, 2, 3, 7, 8, 9, 40} {
			signed := signedRoot(t, svc, tree, size)
			for index := range size {
				r := attachFromTree(t, signed, tree, index, size)
				if err := genericVerify(r, genericLeaf(testLeaf(int(index))), svc.key.Public()); err != nil {
					t.Fatalf("%s size %d index %d: generic verifier: %v", curve.Params().Name, size, index, err)
				}
			}
		}
		// The generic verifier is not vacuous.
		r := makeReceipt(t, svc, tree, 3, 9)
		if err := genericVerify(r, genericLeaf(testLeaf(4)), svc.key.Public()); err == nil {
			t.Fatal("generic verifier accepted a receipt for the wrong leaf")
		}
	}
}

// A receipt built by hand from the specification, with no kid and the
// protected header in a different order, verifies with our Verify.
func TestVerifyAcceptsIndependentlyBuiltReceipt(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 21)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(11)
	const size, index = 11, 6
	root, _ := tree.RootAt(size)
	path, _ := tree.InclusionProof(index, size)
	rawPath := make([][]byte, len(path))
	for i := range path {
		rawPath[i] = path[i][:]
	}
	encodedProof, err := cbor.Marshal([]any{uint64(size), uint64(index), rawPath})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cose.NewSigner(cose.AlgorithmES256, svc.key)
	if err != nil {
		t.Fatal(err)
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			Protected: cose.ProtectedHeader{int64(395): int64(1), int64(1): cose.AlgorithmES256},
			Unprotected: cose.UnprotectedHeader{
				int64(396): map[any]any{int64(-1): []any{encodedProof}},
				"note":     "unrelated unprotected parameter",
			},
		},
		Payload: root[:],
	}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	msg.Payload = nil
	r, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, testLeaf(index), svc.cert); err != nil {
		t.Fatalf("Verify of an independently built receipt: %v", err)
	}
}

// docsRoot is the root-from-path algorithm exactly as docs/receipts.md
// (step 6) spells it out from RFC 9162 §2.1.3.2.
func docsRoot(leafIndex, treeSize uint64, leafHash [32]byte, path [][]byte) ([32]byte, error) {
	node := func(l, r []byte) [32]byte {
		return sha256.Sum256(append(append([]byte{1}, l...), r...))
	}
	fn, sn, r := leafIndex, treeSize-1, leafHash
	for _, p := range path {
		if sn == 0 {
			return r, errors.New("path too long")
		}
		if fn%2 == 1 || fn == sn {
			r = node(p, r[:])
			if fn%2 == 0 {
				for fn%2 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = node(r[:], p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return r, errors.New("path too short")
	}
	return r, nil
}

// The by-hand procedure of docs/receipts.md, steps 1-8, with nothing but
// a CBOR decoder and the standard library: if the documentation is wrong,
// this fails.
func TestByHandProcedureFromDocs(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 22)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(7)
	const index, size = 4, 7
	r := makeReceipt(t, svc, tree, index, size)
	leafC := testLeaf(index)

	// 1. Tag 18 around [protected, unprotected, payload, signature].
	var tag cbor.RawTag
	if err := cbor.Unmarshal(r, &tag); err != nil || tag.Number != 18 {
		t.Fatalf("step 1: tag %d, %v", tag.Number, err)
	}
	var msg struct {
		_           struct{} `cbor:",toarray"`
		Protected   []byte
		Unprotected map[int64]cbor.RawMessage
		Payload     cbor.RawMessage
		Signature   []byte
	}
	if err := cbor.Unmarshal(tag.Content, &msg); err != nil || !bytes.Equal(msg.Payload, []byte{0xf6}) {
		t.Fatalf("step 1: %v, payload %x", err, msg.Payload)
	}
	// 2. Protected header.
	var prot map[int64]any
	if err := cbor.Unmarshal(msg.Protected, &prot); err != nil {
		t.Fatal(err)
	}
	if prot[1] != int64(-7) || prot[395] != uint64(1) {
		t.Fatalf("step 2: %v", prot)
	}
	// 3. kid = SHA-256 of the DER SubjectPublicKeyInfo.
	if kid := sha256.Sum256(svc.cert.RawSubjectPublicKeyInfo); !bytes.Equal(prot[4].([]byte), kid[:]) {
		t.Fatalf("step 3: kid %x, want %x", prot[4], kid)
	}
	// 4. vdp -> -1 -> [bstr] -> [tree_size, leaf_index, path].
	var vdp map[int64][][]byte
	if err := cbor.Unmarshal(msg.Unprotected[396], &vdp); err != nil || len(vdp[-1]) != 1 {
		t.Fatalf("step 4: %v %v", err, vdp)
	}
	var proof struct {
		_         struct{} `cbor:",toarray"`
		TreeSize  uint64
		LeafIndex uint64
		Path      [][]byte
	}
	if err := cbor.Unmarshal(vdp[-1][0], &proof); err != nil {
		t.Fatal(err)
	}
	inner := 0
	for x := proof.LeafIndex ^ (proof.TreeSize - 1); x != 0; x >>= 1 {
		inner++
	}
	border := 0
	for x := proof.LeafIndex >> inner; x != 0; x >>= 1 {
		border += int(x & 1)
	}
	if proof.TreeSize != size || proof.LeafIndex != index || len(proof.Path) != inner+border {
		t.Fatalf("step 4: %d %d, %d hashes, want %d", proof.TreeSize, proof.LeafIndex, len(proof.Path), inner+border)
	}
	// 5. Leaf hash.
	leafHash := sha256.Sum256(append([]byte{0}, genericLeaf(leafC)...))
	// 6. Root.
	root, err := docsRoot(proof.LeafIndex, proof.TreeSize, leafHash, proof.Path)
	if err != nil {
		t.Fatalf("step 6: %v", err)
	}
	if want, _ := tree.RootAt(size); root != want {
		t.Fatalf("step 6: root %x, want %x", root, want)
	}
	// 7. Sig_structure bytes as laid out in the docs, ECDSA over r ‖ s.
	tbs := append([]byte{0x84, 0x6a}, "Signature1"...)
	tbs = append(tbs, 0x58, byte(len(msg.Protected)))
	tbs = append(tbs, msg.Protected...)
	tbs = append(tbs, 0x40, 0x58, 0x20)
	tbs = append(tbs, root[:]...)
	digest := sha256.Sum256(tbs)
	rr := new(big.Int).SetBytes(msg.Signature[:32])
	ss := new(big.Int).SetBytes(msg.Signature[32:])
	if len(msg.Signature) != 64 || !ecdsa.Verify(&svc.key.PublicKey, digest[:], rr, ss) {
		t.Fatal("step 7: signature does not verify over the documented Sig_structure")
	}
	// 8. The commit evidence names the transaction; leaf_index = seqno - 1.
	if !strings.HasPrefix(leafC.CommitEvidence, "ce:1.5:") || proof.LeafIndex != 5-1 {
		t.Fatalf("step 8: %s, leaf_index %d", leafC.CommitEvidence, proof.LeafIndex)
	}
}

package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"math/bits"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/veraison/go-cose"

	"github.com/cocoledger/coco/internal/merkle"
)

func TestLeafLayout(t *testing.T) {
	c := testLeaf(3)
	leaf := c.Leaf()
	ce := sha256.Sum256([]byte(c.CommitEvidence))
	want := append(append(append([]byte{}, c.WriteSetDigest[:]...), ce[:]...), c.ClaimsDigest[:]...)
	if !bytes.Equal(leaf[:], want) {
		t.Fatalf("Leaf() = %x, want write_set_digest ‖ SHA-256(commit_evidence) ‖ claims_digest = %x", leaf, want)
	}
}

func TestLeafHashMatchesRFC9162(t *testing.T) {
	for i := range 6 {
		c := testLeaf(i)
		leaf := c.Leaf()
		got := c.LeafHash()
		if want := rfc6962.DefaultHasher.HashLeaf(leaf[:]); !bytes.Equal(got[:], want) {
			t.Fatalf("leaf %d: LeafHash() = %x, rfc6962 says %x", i, got, want)
		}
		if want := merkle.LeafHash(leaf[:]); got != want {
			t.Fatalf("leaf %d: LeafHash() = %x, internal/merkle says %x", i, got, want)
		}
	}
}

// The expected path length used to reject proofs early agrees with the
// proofs the tree actually produces.
func TestInclusionPathLen(t *testing.T) {
	tree := testLedger(130)
	for size := uint64(1); size <= 130; size++ {
		for index := range size {
			p, err := tree.InclusionProof(index, size)
			if err != nil {
				t.Fatal(err)
			}
			if got := inclusionPathLen(index, size); got != len(p) {
				t.Fatalf("inclusionPathLen(%d, %d) = %d, tree gives %d", index, size, got, len(p))
			}
		}
	}
	if got := inclusionPathLen(0, 1<<63); got != 63 {
		t.Fatalf("inclusionPathLen(0, 2^63) = %d, want 63", got)
	}
	if got := inclusionPathLen(1<<63, ^uint64(0)); got > MaxPathLength {
		t.Fatalf("inclusionPathLen at the largest size = %d, above MaxPathLength", got)
	}
}

// Sign, attach and verify with a real tree, for every leaf of every size up
// to 20 and for sampled leaves of larger, power-of-two-adjacent sizes.
func TestRoundTrip(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	svc := newService(t, generateKey(t, elliptic.P256()))
	const max = 260
	tree := testLedger(max)
	check := func(index, size uint64, signed []byte) {
		r := attachFromTree(t, signed, tree, index, size)
		if err := Verify(r, testLeaf(int(index)), svc.cert); err != nil {
			t.Fatalf("size %d, index %d: %v", size, index, err)
		}
		// The receipt proves this leaf only.
		other := testLeaf(int(index+1) % max)
		if err := Verify(r, other, svc.cert); !errors.Is(err, ErrSignature) {
			t.Fatalf("size %d, index %d: verified for another leaf: %v", size, index, err)
		}
	}
	for size := uint64(1); size <= 20; size++ {
		signed := signedRoot(t, svc, tree, size)
		for index := range size {
			check(index, size, signed)
		}
	}
	for _, size := range []uint64{31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, max} {
		signed := signedRoot(t, svc, tree, size)
		for _, index := range []uint64{0, 1, size / 2, size - 2, size - 1} {
			check(index, size, signed)
		}
	}
}

func TestOtherCurves(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2)
	tree := testLedger(9)
	for _, c := range []struct {
		curve elliptic.Curve
		alg   cose.Algorithm
	}{{elliptic.P256(), cose.AlgorithmES256}, {elliptic.P384(), cose.AlgorithmES384}, {elliptic.P521(), cose.AlgorithmES512}} {
		svc := newService(t, generateKey(t, c.curve))
		r := makeReceipt(t, svc, tree, 4, 9)
		var msg cose.Sign1Message
		if err := msg.UnmarshalCBOR(r); err != nil {
			t.Fatal(err)
		}
		if alg, _ := msg.Headers.Protected.Algorithm(); alg != c.alg {
			t.Errorf("%s: alg %v, want %v", c.curve.Params().Name, alg, c.alg)
		}
		if err := Verify(r, testLeaf(4), svc.cert); err != nil {
			t.Errorf("%s: %v", c.curve.Params().Name, err)
		}
	}
}

func TestSignRootHeaders(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 3)
	key := generateKey(t, elliptic.P256())
	sr, err := SignRoot(rand.Reader, key, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sr, []byte{0xd2, 0x84}) {
		t.Fatalf("signed root starts %x, want tag 18 and a 4-array (d2 84)", sr[:2])
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(sr); err != nil {
		t.Fatal(err)
	}
	kid, _ := KeyID(key.Public())
	p := msg.Headers.Protected
	if alg, _ := p.Algorithm(); alg != cose.AlgorithmES256 {
		t.Errorf("alg = %v, want ES256", alg)
	}
	if got, _ := p[int64(4)].([]byte); !bytes.Equal(got, kid[:]) {
		t.Errorf("kid = %x, want %x", got, kid)
	}
	if got := p[int64(HeaderLabelVDS)]; got != int64(VDSRFC9162SHA256) {
		t.Errorf("vds = %v, want 1", got)
	}
	if len(p) != 3 {
		t.Errorf("protected header has %d entries, want exactly alg, kid, vds: %v", len(p), p)
	}
	if len(msg.Headers.Unprotected) != 0 {
		t.Errorf("unprotected header = %v, want empty", msg.Headers.Unprotected)
	}
	if msg.Payload != nil {
		t.Errorf("payload = %x, want detached (nil)", msg.Payload)
	}
}

func TestSignRootUnsupportedKeys(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 4)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p224 := generateKey(t, elliptic.P224())
	if _, err := SignRoot(rand.Reader, edKey, [32]byte{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Ed25519 key: err = %v, want ErrUnsupported", err)
	}
	if _, err := SignRoot(rand.Reader, p224, [32]byte{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("P-224 key: err = %v, want ErrUnsupported", err)
	}
}

func TestVerifyRoot(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 5)
	svc := newService(t, generateKey(t, elliptic.P256()))
	root := sha256.Sum256([]byte("root"))
	sr, err := SignRoot(rand.Reader, svc.key, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRoot(sr, root, svc.key.Public()); err != nil {
		t.Fatalf("VerifyRoot: %v", err)
	}
	other := root
	other[31] ^= 1
	if err := VerifyRoot(sr, other, svc.key.Public()); !errors.Is(err, ErrSignature) {
		t.Fatalf("VerifyRoot of another root: %v, want ErrSignature", err)
	}
	if err := VerifyRoot(sr, root, generateKey(t, elliptic.P256()).Public()); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("VerifyRoot with another key: %v, want ErrKeyMismatch", err)
	}
	// A receipt is the signed root plus an unsigned header: still verifies.
	r, err := Attach(sr, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRoot(r, root, svc.key.Public()); err != nil {
		t.Fatalf("VerifyRoot on a receipt: %v", err)
	}
}

// sameComputation reports whether the RFC 9162 verification algorithm does
// exactly the same hashing for (index1, size1) as for (index2, size2): the
// same number of inner levels, the same index bits on them, and the same
// number of border hashes. Such pairs yield the same root from the same path.
func sameComputation(index1, size1, index2, size2 uint64) bool {
	if index1 >= size1 || index2 >= size2 {
		return false
	}
	inner1, inner2 := bits.Len64(index1^(size1-1)), bits.Len64(index2^(size2-1))
	mask := uint64(1)<<inner1 - 1
	return inner1 == inner2 && index1&mask == index2&mask &&
		bits.OnesCount64(index1>>inner1) == bits.OnesCount64(index2>>inner2)
}

// Flipping any bit pattern in any byte of a receipt makes it fail, with a
// classified error, except where RFC 9942 leaves the receipt malleable: the
// unsigned tree_size and leaf_index may become another pair that the RFC 9162
// algorithm treats identically (see TestTreeSizeAndIndexAreNotSigned).
func TestEveryByteOfReceiptMatters(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 6)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(13)
	r := makeReceipt(t, svc, tree, 5, 13)
	leaf := testLeaf(5)
	if err := Verify(r, leaf, svc.cert); err != nil {
		t.Fatal(err)
	}
	// [tree_size 13, leaf_index 5, [4 hashes]] encodes as 83 0d 05 84.
	at := bytes.Index(r, []byte{0x83, 0x0d, 0x05, 0x84})
	if at < 0 || bytes.Count(r, []byte{0x83, 0x0d, 0x05, 0x84}) != 1 {
		t.Fatalf("cannot locate the inclusion proof in %x", r)
	}
	sizeAt, indexAt := at+1, at+2
	malleable := 0
	for i := range r {
		for _, mask := range []byte{0x01, 0x02, 0x80, 0xff} {
			bad := bytes.Clone(r)
			bad[i] ^= mask
			err := Verify(bad, leaf, svc.cert)
			if err == nil {
				size, index := uint64(13), uint64(5)
				if i == sizeAt {
					size = uint64(bad[i])
				}
				if i == indexAt {
					index = uint64(bad[i])
				}
				if (i != sizeAt && i != indexAt) || bad[i] >= 24 || !sameComputation(5, 13, index, size) {
					t.Fatalf("receipt with byte %d ^= %#x verified", i, mask)
				}
				malleable++
				continue
			}
			if !classified(err) {
				t.Fatalf("byte %d ^= %#x: unclassified error %v", i, mask, err)
			}
		}
	}
	if malleable == 0 {
		t.Fatal("expected tree_size 13 -> 12 or 15 to verify (same computation); the model of malleability is wrong")
	}
}

// RFC 9942 signs the root only; tree_size and leaf_index sit in the unsigned
// header. Different pairs on which the RFC 9162 algorithm does the same
// hashing recompute the same root, so they verify. This pins the property
// down: the leaf is proven to be under the signed root, but its position is
// only as trustworthy as the receipt's source, unless it is bound elsewhere
// (for example a transaction id inside the commit evidence).
func TestTreeSizeAndIndexAreNotSigned(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 13)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(25)
	for _, c := range []struct{ index, size, index2, size2 uint64 }{
		{5, 13, 5, 14},   // another tree size
		{21, 25, 37, 41}, // another leaf index and size, neither real
	} {
		if !sameComputation(c.index, c.size, c.index2, c.size2) {
			t.Fatalf("test case (%d,%d)->(%d,%d) is not an equivalent pair", c.index, c.size, c.index2, c.size2)
		}
		signed := signedRoot(t, svc, tree, c.size)
		path, _ := tree.InclusionProof(c.index, c.size)
		moved, err := Attach(signed, c.size2, c.index2, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(moved, testLeaf(int(c.index)), svc.cert); err != nil {
			t.Fatalf("(%d,%d) relabelled (%d,%d): %v; if tree_size is now signed, update this test and the docs",
				c.index, c.size, c.index2, c.size2, err)
		}
	}
}

func TestEveryBitOfLeafMatters(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 7)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(13)
	r := makeReceipt(t, svc, tree, 5, 13)
	leaf := testLeaf(5)
	expectSignature := func(what string, l LeafComponents) {
		t.Helper()
		if err := Verify(r, l, svc.cert); !errors.Is(err, ErrSignature) {
			t.Fatalf("%s: err = %v, want ErrSignature", what, err)
		}
	}
	for i := range 32 {
		for bit := range 8 {
			l := leaf
			l.WriteSetDigest[i] ^= 1 << bit
			expectSignature("write_set_digest", l)
			l = leaf
			l.ClaimsDigest[i] ^= 1 << bit
			expectSignature("claims_digest", l)
		}
	}
	for i := range len(leaf.CommitEvidence) {
		l := leaf
		b := []byte(l.CommitEvidence)
		b[i] ^= 1
		l.CommitEvidence = string(b)
		expectSignature("commit_evidence", l)
	}
	l := leaf
	l.CommitEvidence += " "
	expectSignature("commit_evidence with a suffix", l)
}

func TestWrongServiceCertificate(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 8)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(6)
	r := makeReceipt(t, svc, tree, 2, 6)
	leaf := testLeaf(2)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name string
		svc  *service
		want error
	}{
		{"another P-256 key", newService(t, generateKey(t, elliptic.P256())), ErrKeyMismatch},
		{"a P-384 key", newService(t, generateKey(t, elliptic.P384())), ErrKeyMismatch},
	} {
		if err := Verify(r, leaf, c.svc.cert); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	edCert := selfSigned(t, edKey)
	if err := Verify(r, leaf, edCert); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Ed25519 certificate: err = %v, want ErrUnsupported", err)
	}
	if err := Verify(r, leaf, nil); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("nil certificate: err = %v, want ErrKeyMismatch", err)
	}
	// Without a kid the wrong key is only caught by the signature.
	noKid := signWith(t, svc.key, cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmES256,
		int64(HeaderLabelVDS):     int64(1),
	}, tree, 6)
	noKidReceipt := attachFromTree(t, noKid, tree, 2, 6)
	if err := Verify(noKidReceipt, leaf, svc.cert); err != nil {
		t.Fatalf("receipt without kid, right key: %v", err)
	}
	other := newService(t, generateKey(t, elliptic.P256()))
	if err := Verify(noKidReceipt, leaf, other.cert); !errors.Is(err, ErrSignature) {
		t.Errorf("receipt without kid, wrong key: err = %v, want ErrSignature", err)
	}
}

// signWith signs the root of tree at size with an arbitrary protected header.
func signWith(t *testing.T, key *ecdsa.PrivateKey, protected cose.ProtectedHeader, tree *merkle.Tree, size uint64) []byte {
	t.Helper()
	root, err := tree.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	alg, err := protected.Algorithm()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		t.Fatal(err)
	}
	msg := cose.Sign1Message{Headers: cose.Headers{Protected: protected, Unprotected: cose.UnprotectedHeader{}}, Payload: root[:]}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	msg.Payload = nil
	b, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withUnprotected replaces the unprotected header of a signed message.
func withUnprotected(t *testing.T, signed []byte, u cose.UnprotectedHeader) []byte {
	t.Helper()
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(signed); err != nil {
		t.Fatal(err)
	}
	msg.Headers.RawUnprotected = nil
	msg.Headers.Unprotected = u
	b, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vdpHeader is the unprotected header of the receipt of leaf index at size.
func vdpHeader(t *testing.T, tree *merkle.Tree, index, size uint64) cose.UnprotectedHeader {
	t.Helper()
	path, err := tree.InclusionProof(index, size)
	if err != nil {
		t.Fatal(err)
	}
	p := make([][]byte, len(path))
	for i := range path {
		p[i] = path[i][:]
	}
	proof := mustCBOR(t, []any{size, index, p})
	return cose.UnprotectedHeader{int64(HeaderLabelVDP): map[any]any{int64(InclusionProofsLabel): []any{proof}}}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hand-built proofs: each is rejected with the documented class and a
// message naming the problem.
func TestProofRejections(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 9)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(16)
	signed := signedRoot(t, svc, tree, 13)
	path13, _ := tree.InclusionProof(5, 13)
	bs := func(p []merkle.Hash) [][]byte {
		out := make([][]byte, len(p))
		for i := range p {
			out[i] = p[i][:]
		}
		return out
	}
	good := bs(path13)
	vdp := func(proofs ...any) cose.UnprotectedHeader {
		return cose.UnprotectedHeader{int64(HeaderLabelVDP): map[any]any{int64(InclusionProofsLabel): proofs}}
	}
	proofOf := func(size, index any, path any) []byte { return mustCBOR(t, []any{size, index, path}) }
	short := bytes.Clone(good[0][:31])
	swapped := [][]byte{good[1], good[0], good[2], good[3]}
	long := make([][]byte, 65)
	for i := range long {
		long[i] = make([]byte, 32)
	}
	cases := []struct {
		name string
		u    cose.UnprotectedHeader
		want error
		msg  string
	}{
		{"valid", vdp(proofOf(13, 5, good)), nil, ""},
		{"no vdp", cose.UnprotectedHeader{}, ErrMalformed, "no vdp (396)"},
		{"vdp not a map", cose.UnprotectedHeader{int64(HeaderLabelVDP): int64(7)}, ErrMalformed, "vdp (396) must be a map"},
		{"no inclusion proofs", cose.UnprotectedHeader{int64(HeaderLabelVDP): map[any]any{int64(-2): []any{}}}, ErrMalformed, "no inclusion proofs (-1)"},
		{"zero proofs", vdp(), ErrMalformed, "exactly one inclusion proof, found 0"},
		{"two proofs", vdp(proofOf(13, 5, good), proofOf(13, 5, good)), ErrMalformed, "exactly one inclusion proof, found 2"},
		{"proof not a bstr", vdp([]any{13, 5, good}), ErrMalformed, "want a CBOR byte string"},
		{"proof with 4 fields", vdp(mustCBOR(t, []any{13, 5, good, 0})), ErrMalformed, "inclusion proof must be"},
		{"negative tree_size", vdp(proofOf(-13, 5, good)), ErrMalformed, "inclusion proof must be"},
		{"path element is text", vdp(proofOf(13, 5, []any{"x", good[1], good[2], good[3]})), ErrMalformed, "inclusion path element 0"},
		{"tree_size 0", vdp(proofOf(0, 0, [][]byte{})), ErrProof, "tree_size must be at least 1"},
		{"leaf_index = tree_size", vdp(proofOf(13, 13, good)), ErrProof, "leaf_index must be below tree_size"},
		{"path element 31 bytes", vdp(proofOf(13, 5, [][]byte{good[0], short, good[2], good[3]})), ErrProof, "element 1 is 31 bytes, want 32"},
		{"path one short", vdp(proofOf(13, 5, good[:3])), ErrProof, "inclusion path has 3 hashes, want 4"},
		{"path one long", vdp(proofOf(13, 5, append(bs(path13), good[0]))), ErrProof, "inclusion path has 5 hashes, want 4"},
		{"path of 65", vdp(proofOf(13, 5, long)), ErrProof, "65 hashes, more than the 64"},
		{"another leaf_index, same path length", vdp(proofOf(13, 4, good)), ErrSignature, ""},
		{"path reordered", vdp(proofOf(13, 5, swapped)), ErrSignature, ""},
	}
	for _, c := range cases {
		r := withUnprotected(t, signed, c.u)
		err := Verify(r, testLeaf(5), svc.cert)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !classified(err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: message %q does not say %q", c.name, err, c.msg)
		}
		var pe *ProofError
		if errors.Is(c.want, ErrProof) && (!errors.As(err, &pe) || pe.TreeSize == 0 && c.name != "tree_size 0") {
			t.Errorf("%s: want a *ProofError with the proof's numbers, got %#v", c.name, err)
		}
	}
}

func TestProtectedHeaderRejections(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 10)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(4)
	kid, _ := KeyID(svc.key.Public())
	otherKid := sha256.Sum256([]byte("other"))
	base := func() cose.ProtectedHeader {
		return cose.ProtectedHeader{
			cose.HeaderLabelAlgorithm: cose.AlgorithmES256,
			cose.HeaderLabelKeyID:     kid[:],
			int64(HeaderLabelVDS):     int64(1),
		}
	}
	with := func(k any, v any) cose.ProtectedHeader { h := base(); h[k] = v; return h }
	without := func(k any) cose.ProtectedHeader { h := base(); delete(h, k); return h }
	cases := []struct {
		name string
		h    cose.ProtectedHeader
		want error
		msg  string
	}{
		{"baseline", base(), nil, ""},
		{"understood crit", with(cose.HeaderLabelCritical, []any{int64(HeaderLabelVDS)}), nil, ""},
		{"vds 2", with(int64(HeaderLabelVDS), int64(2)), ErrUnsupported, "vds (395) is 2"},
		{"vds text", with(int64(HeaderLabelVDS), "1"), ErrUnsupported, "vds (395) is 1"},
		{"no vds", without(int64(HeaderLabelVDS)), ErrMalformed, "no vds (395)"},
		{"other kid", with(cose.HeaderLabelKeyID, otherKid[:]), ErrKeyMismatch, "receipt kid is"},
		{"unknown crit", func() cose.ProtectedHeader {
			h := with(int64(999), int64(1))
			h[cose.HeaderLabelCritical] = []any{int64(999)}
			return h
		}(), ErrUnsupported, "critical header parameter 999"},
	}
	for _, c := range cases {
		signed := signWith(t, svc.key, c.h, tree, 4)
		// Built without Attach, which refuses to extend a signed root that
		// breaks the profile (checked below).
		r := withUnprotected(t, signed, vdpHeader(t, tree, 1, 4))
		if c.want != nil && !errors.Is(c.want, ErrKeyMismatch) {
			if _, err := Attach(signed, 4, 1, make([][32]byte, 2)); !errors.Is(err, c.want) {
				t.Errorf("%s: Attach err = %v, want %v", c.name, err, c.want)
			}
		}
		err := Verify(r, testLeaf(1), svc.cert)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg)):
			t.Errorf("%s: err = %v, want %v saying %q", c.name, err, c.want, c.msg)
		}
	}
}

func TestEnvelopeRejections(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 11)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(4)
	r := makeReceipt(t, svc, tree, 1, 4)
	leaf := testLeaf(1)

	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(r); err != nil {
		t.Fatal(err)
	}
	attached := msg
	attached.Payload = []byte("root")
	withPayload, err := attached.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	untagged, err := (*cose.UntaggedSign1Message)(&msg).MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	indefinite := append([]byte{0xd2, 0x9f}, append(bytes.Clone(r[2:]), 0xff)...)
	deep := bytes.Repeat([]byte{0x81}, 40)
	cases := []struct {
		name string
		b    []byte
		msg  string
	}{
		{"empty", nil, "not well-formed CBOR"},
		{"truncated", r[:len(r)-1], "not well-formed CBOR"},
		{"trailing byte", append(bytes.Clone(r), 0), "not well-formed CBOR"},
		{"too large", make([]byte, MaxReceiptSize+1), "more than the 65536 byte limit"},
		{"untagged", untagged, "not a COSE_Sign1_Tagged"},
		{"indefinite-length array", indefinite, "not well-formed CBOR"},
		{"nested too deep", append(deep, 0), "not well-formed CBOR"},
		{"attached payload", withPayload, "payload must be detached"},
	}
	for _, c := range cases {
		err := Verify(c.b, leaf, svc.cert)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", c.name, err, c.msg)
		}
	}
	// A signed root is not a receipt.
	if err := Verify(signedRoot(t, svc, tree, 4), leaf, svc.cert); !errors.Is(err, ErrMalformed) {
		t.Errorf("signed root as receipt: err = %v, want ErrMalformed", err)
	}
}

func TestAttachRejections(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 12)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(8)
	signed := signedRoot(t, svc, tree, 8)
	path, _ := tree.InclusionProof(3, 8)
	for _, c := range []struct {
		name        string
		size, index uint64
		path        [][32]byte
	}{
		{"size 0", 0, 0, nil},
		{"index = size", 8, 8, path},
		{"path too short", 8, 3, path[:2]},
		{"path too long", 8, 3, append(path, path[0])},
		{"path for another index", 8, 3, make([][32]byte, 1)},
	} {
		_, err := Attach(signed, c.size, c.index, c.path)
		var pe *ProofError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProof) || pe.TreeSize != c.size || pe.LeafIndex != c.index {
			t.Errorf("%s: err = %v, want a *ProofError for (%d, %d)", c.name, err, c.size, c.index)
		}
	}
	r, err := Attach(signed, 8, 3, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(r, 8, 3, path); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "already carries a vdp") {
		t.Errorf("Attach to a receipt: err = %v, want ErrMalformed about vdp", err)
	}
	if _, err := Attach([]byte("not cbor"), 8, 3, path); !errors.Is(err, ErrMalformed) {
		t.Errorf("Attach to garbage: err = %v, want ErrMalformed", err)
	}
	// Attach keeps the signature bytes and protected header exactly.
	var a, b cose.Sign1Message
	if err := a.UnmarshalCBOR(signed); err != nil {
		t.Fatal(err)
	}
	if err := b.UnmarshalCBOR(r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Signature, b.Signature) || !bytes.Equal(a.Headers.RawProtected, b.Headers.RawProtected) {
		t.Fatal("Attach changed the signed part of the message")
	}
}

func TestErrorMessages(t *testing.T) {
	e := &ProofError{TreeSize: 13, LeafIndex: 5, Reason: "inclusion path has 3 hashes, want 4"}
	const want = "receipt: invalid inclusion proof (tree_size 13, leaf_index 5): inclusion path has 3 hashes, want 4"
	if e.Error() != want {
		t.Fatalf("ProofError = %q, want %q", e.Error(), want)
	}
	for _, s := range sentinels {
		if !strings.HasPrefix(s.Error(), "receipt: ") {
			t.Errorf("sentinel %q lacks the package prefix", s)
		}
	}
}

// --- Benchmarks.

type benchFixture struct {
	svc     *service
	tree    *merkle.Tree
	signed  []byte
	receipt []byte
	path    []merkle.Hash
}

const benchSize = 100_000 // a path of 17 hashes

func newBenchFixture(b *testing.B) *benchFixture {
	f := &benchFixture{svc: newService(b, fixedKey(b, "bench")), tree: testLedger(benchSize)}
	f.signed = signedRoot(b, f.svc, f.tree, benchSize)
	f.receipt = attachFromTree(b, f.signed, f.tree, 12345, benchSize)
	f.path, _ = f.tree.InclusionProof(12345, benchSize)
	return f
}

func BenchmarkVerify(b *testing.B) {
	f := newBenchFixture(b)
	leaf := testLeaf(12345)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(f.receipt, leaf, f.svc.cert); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttach(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Attach(f.signed, benchSize, 12345, f.path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignRoot(b *testing.B) {
	key := fixedKey(b, "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignRoot(rand.Reader, key, [32]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafHash(b *testing.B) {
	c := testLeaf(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = c.LeafHash()
	}
}

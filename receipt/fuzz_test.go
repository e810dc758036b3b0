package receipt

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/cocoledger/coco/internal/merkle"
)

// fuzzWorld is a fixed ledger of 13 leaves signed by a fixed key: the
// context every fuzz input is verified in.
type fuzzWorld struct {
	svc  *service
	tree *merkle.Tree
}

const fuzzSize, fuzzIndex = 13, 5

func newFuzzWorld(f *testing.F) *fuzzWorld {
	return &fuzzWorld{svc: newService(f, fixedKey(f, "fuzz")), tree: testLedger(fuzzSize)}
}

// seeds returns valid receipts and signed roots plus mangled variants.
func (w *fuzzWorld) seeds(f *testing.F) [][]byte {
	good := makeReceipt(f, w.svc, w.tree, fuzzIndex, fuzzSize)
	out := [][]byte{
		good,
		makeReceipt(f, w.svc, w.tree, 0, 1),
		makeReceipt(f, w.svc, w.tree, 12, 13),
		makeReceipt(f, w.svc, w.tree, fuzzIndex, 8),
		signedRoot(f, w.svc, w.tree, fuzzSize),
		good[:len(good)/2],
		append(bytes.Clone(good), 0x00),
		{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40},
		{0xd2, 0x9f, 0xff},
		{0xf6},
		nil,
		[]byte("not a receipt"),
	}
	return out
}

// FuzzVerify feeds arbitrary bytes to Verify for leaf 5 of the fixed ledger.
// The signature is unforgeable, so anything accepted must be a re-encoding of
// a genuine receipt for leaf 5: signed over the ledger's real root at some
// size that contains leaf 5, with a proof the RFC 9162 algorithm treats like
// leaf 5's proof at that size. Every rejection must be classified.
func FuzzVerify(f *testing.F) {
	w := newFuzzWorld(f)
	for _, s := range w.seeds(f) {
		f.Add(s)
	}
	leaf := testLeaf(fuzzIndex)
	pub := w.svc.cert.PublicKey
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := verify(b, leaf.LeafHash(), pub)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			if Verify(b, leaf, w.svc.cert) == nil {
				t.Fatal("Verify accepts what verify rejects")
			}
			return
		}
		if err := Verify(b, leaf, w.svc.cert); err != nil {
			t.Fatalf("Verify rejects what verify accepts: %v", err)
		}
		for size := uint64(fuzzIndex + 1); size <= fuzzSize; size++ {
			root, _ := w.tree.RootAt(size)
			if sameComputation(fuzzIndex, size, p.LeafIndex, p.TreeSize) && VerifyRoot(b, root, pub) == nil {
				return
			}
		}
		t.Fatalf("accepted a proof (index %d, size %d) that is no genuine proof of leaf %d", p.LeafIndex, p.TreeSize, fuzzIndex)
	})
}

// FuzzAttach feeds arbitrary signed roots and proof parameters to Attach.
// Whatever it accepts must decode back to exactly the proof given, and must
// not disturb the signature: if the input verified as a signed root, so does
// the output.
func FuzzAttach(f *testing.F) {
	w := newFuzzWorld(f)
	for _, s := range w.seeds(f) {
		f.Add(s, uint64(fuzzSize), uint64(fuzzIndex), uint8(4), byte(7))
		f.Add(s, uint64(1), uint64(0), uint8(0), byte(0))
	}
	root, _ := w.tree.RootAt(fuzzSize)
	pub := w.svc.cert.PublicKey
	f.Fuzz(func(t *testing.T, signed []byte, size, index uint64, pathLen uint8, fill byte) {
		path := make([][32]byte, pathLen%(MaxPathLength+2))
		for i := range path {
			path[i][0], path[i][31] = fill, byte(i)
		}
		out, err := Attach(signed, size, index, path)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		s, err := decodeSigned(out)
		if err != nil {
			t.Fatalf("Attach output does not decode: %v", err)
		}
		p, err := decodeProof(s.msg.Headers.RawUnprotected)
		if err != nil {
			t.Fatalf("Attach output proof does not decode: %v", err)
		}
		if p.TreeSize != size || p.LeafIndex != index || len(p.Path) != len(path) {
			t.Fatalf("proof (%d, %d, %d hashes) came back as (%d, %d, %d hashes)", size, index, len(path), p.TreeSize, p.LeafIndex, len(p.Path))
		}
		for i := range path {
			if !bytes.Equal(p.Path[i], path[i][:]) {
				t.Fatalf("path element %d changed", i)
			}
		}
		if VerifyRoot(signed, root, pub) == nil {
			if err := VerifyRoot(out, root, pub); err != nil {
				t.Fatalf("Attach broke a valid signature: %v", err)
			}
		}
	})
}

// FuzzParseJSON: anything ParseJSON accepts has well-formed fields and
// survives encoding/json and a second parse unchanged.
func FuzzParseJSON(f *testing.F) {
	w := newFuzzWorld(f)
	r := New("1.6", testLeaf(fuzzIndex), makeReceipt(f, w.svc, w.tree, fuzzIndex, fuzzSize))
	good, err := json.Marshal(r)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(good),
		`{"transaction_id":"1.1","leaf_components":{"write_set_digest":"` + r.LeafComponents.WriteSetDigest + `","commit_evidence":"ce:1.1:` + r.LeafComponents.WriteSetDigest + `","claims_digest":"` + r.LeafComponents.ClaimsDigest + `"},"cose_receipt":""}`,
		`{"transaction_id":"1.1","transaction_id":"1.1"}`,
		`{"Transaction_ID":"1.1"}`,
		`{"transaction_id":null}`,
		`[1,2,3]`,
		`{}`,
		``,
		`{"transaction_id":"1.1","leaf_components":{},"cose_receipt":"AA=="} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseJSON(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		if _, err := parseSeqno(r.TransactionID); err != nil {
			t.Fatalf("accepted bad transaction_id: %v", err)
		}
		leaf, err := r.Leaf()
		if err != nil {
			t.Fatalf("accepted bad leaf components: %v", err)
		}
		again := New(r.TransactionID, leaf, r.COSEReceipt)
		if !reflect.DeepEqual(normalise(again), normalise(r)) {
			t.Fatalf("leaf components do not round-trip: %+v vs %+v", again, r)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseJSON(enc)
		if err != nil {
			t.Fatalf("re-encoded receipt rejected: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(normalise(r2), normalise(r)) {
			t.Fatalf("JSON round trip changed the receipt: %+v vs %+v", r2, r)
		}
		// Verify must cope with whatever was accepted.
		if err := r.Verify(w.svc.cert); err != nil && !classified(err) {
			t.Fatalf("unclassified Verify error: %v", err)
		}
	})
}

// normalise treats an empty and a nil COSE receipt alike: JSON cannot tell
// them apart.
func normalise(r *Receipt) Receipt {
	c := *r
	if len(c.COSEReceipt) == 0 {
		c.COSEReceipt = nil
	}
	return c
}

// The fuzz targets need seeds that verify; make sure they do, so a broken
// seed generator cannot silently turn the fuzzers into garbage-only runs.
func TestFuzzSeedsAreValid(t *testing.T) {
	svc := newService(t, fixedKey(t, "fuzz"))
	tree := testLedger(fuzzSize)
	r := makeReceipt(t, svc, tree, fuzzIndex, fuzzSize)
	if err := Verify(r, testLeaf(fuzzIndex), svc.cert); err != nil {
		t.Fatal(err)
	}
	sr, err := SignRoot(rand.Reader, svc.key, [32]byte{})
	if err != nil || VerifyRoot(sr, [32]byte{}, svc.key.Public()) != nil {
		t.Fatalf("fixed key cannot sign and verify: %v", err)
	}
}

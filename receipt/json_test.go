package receipt

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/cryptotest"
)

// jsonFixture is a verified receipt for transaction 1.6 (leaf 5) and its
// JSON.
func jsonFixture(t *testing.T) (*service, *Receipt, []byte) {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 30)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(9)
	r := New("1.6", testLeaf(5), makeReceipt(t, svc, tree, 5, 9))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return svc, r, b
}

func TestJSONRoundTrip(t *testing.T) {
	svc, r, b := jsonFixture(t)
	for _, want := range []string{
		`"transaction_id":"1.6"`,
		`"write_set_digest":"` + r.LeafComponents.WriteSetDigest + `"`,
		`"cose_receipt":"` + base64.StdEncoding.EncodeToString(r.COSEReceipt) + `"`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	got, err := ParseJSON(b)
	if err != nil {
		t.Fatalf("ParseJSON: %v", err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: got %+v, want %+v", got, r)
	}
	leaf, err := got.Leaf()
	if err != nil || leaf != testLeaf(5) {
		t.Fatalf("Leaf() = %+v, %v; want %+v", leaf, err, testLeaf(5))
	}
	if err := got.Verify(svc.cert); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Whitespace and member order are free.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(m, "", "  ")
	if _, err := ParseJSON(append(pretty, '\n')); err != nil {
		t.Fatalf("ParseJSON of indented, reordered JSON: %v", err)
	}
}

func TestReceiptVerifyChecksTransactionID(t *testing.T) {
	svc, r, _ := jsonFixture(t)
	// The commit evidence inside the signed leaf names 1.6: another seqno or
	// another view is caught.
	for _, txid := range []string{"1.5", "1.7", "7.6", "2.6"} {
		bad := *r
		bad.TransactionID = txid
		if err := bad.Verify(svc.cert); !errors.Is(err, ErrTxID) || !strings.Contains(err.Error(), "commit evidence is for 1.6") {
			t.Errorf("transaction_id %s for 1.6: err = %v, want ErrTxID naming 1.6", txid, err)
		}
	}
	for _, c := range []struct {
		name string
		edit func(*Receipt)
		want error
	}{
		{"bad transaction_id", func(r *Receipt) { r.TransactionID = "1.x" }, ErrMalformed},
		{"uppercase write_set_digest", func(r *Receipt) {
			r.LeafComponents.WriteSetDigest = strings.ToUpper(r.LeafComponents.WriteSetDigest)
		}, ErrMalformed},
		{"commit evidence without txid", func(r *Receipt) { r.LeafComponents.CommitEvidence = "secret" }, ErrMalformed},
		{"altered commit evidence", func(r *Receipt) {
			ce := []byte(r.LeafComponents.CommitEvidence)
			ce[len(ce)-1] ^= 1
			r.LeafComponents.CommitEvidence = string(ce)
		}, ErrSignature},
	} {
		bad := *r
		c.edit(&bad)
		if err := bad.Verify(svc.cert); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if err := r.Verify(nil); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("nil certificate: err = %v, want ErrKeyMismatch", err)
	}
}

// The unsigned position of RFC 9942 cannot be used to move a transaction:
// leaf 21 of 25 relabelled leaf 37 of 41 still verifies as a COSE receipt
// (TestTreeSizeAndIndexAreNotSigned), but not as transaction 1.22, whose
// leaf it is, nor as 1.38, where it claims to be.
func TestReceiptVerifyCatchesRelabelledPosition(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 31)
	svc := newService(t, generateKey(t, elliptic.P256()))
	tree := testLedger(25)
	path, _ := tree.InclusionProof(21, 25)
	moved, err := Attach(signedRoot(t, svc, tree, 25), 41, 37, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(moved, testLeaf(21), svc.cert); err != nil {
		t.Fatalf("precondition: relabelled COSE receipt should verify: %v", err)
	}
	for _, txid := range []string{"1.22", "1.38"} {
		if err := New(txid, testLeaf(21), moved).Verify(svc.cert); !errors.Is(err, ErrTxID) {
			t.Errorf("relabelled receipt as %s: err = %v, want ErrTxID", txid, err)
		}
	}
	genuine := makeReceipt(t, svc, tree, 21, 25)
	if err := New("1.22", testLeaf(21), genuine).Verify(svc.cert); err != nil {
		t.Fatalf("genuine receipt for 1.22: %v", err)
	}
}

func TestParseJSONRejections(t *testing.T) {
	_, r, good := jsonFixture(t)
	ws := r.LeafComponents.WriteSetDigest
	cd := r.LeafComponents.ClaimsDigest
	ce := r.LeafComponents.CommitEvidence
	b64 := base64.StdEncoding.EncodeToString(r.COSEReceipt)
	doc := func(txid, leaf, cose string) string {
		return `{"transaction_id":` + txid + `,"leaf_components":` + leaf + `,"cose_receipt":` + cose + `}`
	}
	leaf := func(w, c, d string) string {
		return `{"write_set_digest":` + w + `,"commit_evidence":` + c + `,"claims_digest":` + d + `}`
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	okLeaf := leaf(q(ws), q(ce), q(cd))
	if _, err := ParseJSON([]byte(doc(q("1.6"), okLeaf, q(b64)))); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	cases := []struct {
		name, in, msg string
	}{
		{"not an object", `[]`, "receipt: want a JSON object"},
		{"empty", ``, "receipt: EOF"},
		{"trailing data", string(good) + `{}`, "unexpected data after the object"},
		{"truncated", string(good[:len(good)-1]), "receipt: "},
		{"unknown field", `{"transaction_id":"1.6","extra":1}`, `unknown field "extra"`},
		{"wrong case", strings.Replace(string(good), `"transaction_id"`, `"Transaction_ID"`, 1), `unknown field "Transaction_ID"`},
		{"duplicate field", strings.Replace(string(good), `{"transaction_id":"1.6"`, `{"transaction_id":"1.6","transaction_id":"1.6"`, 1), `duplicate field "transaction_id"`},
		{"missing field", `{"transaction_id":"1.6","leaf_components":` + okLeaf + `}`, `missing field "cose_receipt"`},
		{"missing nested field", doc(q("1.6"), `{"write_set_digest":`+q(ws)+`,"commit_evidence":`+q(ce)+`}`, q(b64)), `leaf_components: missing field "claims_digest"`},
		{"unknown nested field", doc(q("1.6"), `{"write_set_digest":`+q(ws)+`,"x":1}`, q(b64)), `leaf_components: unknown field "x"`},
		{"leaf_components not object", doc(q("1.6"), `"x"`, q(b64)), "leaf_components: want a JSON object"},
		{"null txid", doc(`null`, okLeaf, q(b64)), "transaction_id: want a JSON string"},
		{"number txid", doc(`1.6`, okLeaf, q(b64)), "transaction_id: want a JSON string"},
		{"bad txid", doc(q("2.06"), okLeaf, q(b64)), `transaction_id: ids: bad transaction id "2.06": seqno: leading zero`},
		{"txid without dot", doc(q("26"), okLeaf, q(b64)), `want "<view>.<seqno>"`},
		{"txid zero view", doc(q("0.6"), okLeaf, q(b64)), "view: must be at least 1"},
		{"uppercase hex", doc(q("1.6"), leaf(q(strings.ToUpper(ws)), q(ce), q(cd)), q(b64)), "leaf_components.write_set_digest: character"},
		{"63 hex chars", doc(q("1.6"), leaf(q(ws[1:]), q(ce), q(cd)), q(b64)), "leaf_components.write_set_digest: want 64 lowercase hex characters, got 63"},
		{"65 hex chars", doc(q("1.6"), leaf(q(ws), q(ce), q(cd+"0")), q(b64)), "leaf_components.claims_digest: want 64 lowercase hex characters, got 65"},
		{"non-hex", doc(q("1.6"), leaf(q(ws), q(ce), q("g"+cd[1:])), q(b64)), `character 'g' at offset 0 is not a lowercase hex digit`},
		{"null commit evidence", doc(q("1.6"), leaf(q(ws), `null`, q(cd)), q(b64)), "leaf_components.commit_evidence: want a JSON string"},
		{"commit evidence without prefix", doc(q("1.6"), leaf(q(ws), q("1.6:"+ws), q(cd)), q(b64)), `want "ce:<view>.<seqno>:<64 lowercase hex>"`},
		{"commit evidence without secret", doc(q("1.6"), leaf(q(ws), q("ce:1.6"), q(cd)), q(b64)), `want "ce:<view>.<seqno>:<64 lowercase hex>"`},
		{"commit evidence bad seqno", doc(q("1.6"), leaf(q(ws), q("ce:1.x:"+ws), q(cd)), q(b64)), `names no transaction: ids: bad transaction id "1.x": seqno: 'x' is not a decimal digit`},
		{"commit evidence bad txid", doc(q("1.6"), leaf(q(ws), q("ce:0.6:"+ws), q(cd)), q(b64)), `names no transaction: ids: bad transaction id "0.6": view: must be at least 1`},
		{"commit evidence short secret", doc(q("1.6"), leaf(q(ws), q("ce:1.6:"+ws[1:]), q(cd)), q(b64)), `secret part: want 64 lowercase hex characters, got 63`},
		{"commit evidence uppercase secret", doc(q("1.6"), leaf(q(ws), q("ce:1.6:"+strings.ToUpper(ws)), q(cd)), q(b64)), `secret part: character`},
		{"url base64", doc(q("1.6"), okLeaf, q(strings.NewReplacer("+", "-", "/", "_").Replace(b64)+"-_")), "not padded standard base64"},
		{"unpadded base64", doc(q("1.6"), okLeaf, q("AAE")), "not padded standard base64"},
		{"non-canonical base64", doc(q("1.6"), okLeaf, q("AAF=")), "not padded standard base64"},
		{"line break in base64", doc(q("1.6"), okLeaf, q(b64[:8]+"\n"+b64[8:])), "line break at offset 8"},
		{"base64 over limit", doc(q("1.6"), okLeaf, q(strings.Repeat("A", base64.StdEncoding.EncodedLen(MaxReceiptSize)+4))), "more than the"},
		{"too large", strings.Repeat(" ", MaxJSONSize+1), "more than the 131072 byte limit"},
	}
	for _, c := range cases {
		_, err := ParseJSON([]byte(c.in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: message %q does not say %q", c.name, err, c.msg)
		}
	}
}

package receipt

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cocoledger/coco/internal/ids"
)

// Receipt is the JSON form of a receipt served by GET /app/receipt: the COSE
// receipt together with what a verifier needs besides the service
// certificate.
type Receipt struct {
	TransactionID  string             `json:"transaction_id"`
	LeafComponents JSONLeafComponents `json:"leaf_components"`
	// COSEReceipt is base64 (standard alphabet, padded) in JSON.
	COSEReceipt []byte `json:"cose_receipt"`
}

// JSONLeafComponents is LeafComponents with the digests as 64 lowercase hex
// characters.
type JSONLeafComponents struct {
	WriteSetDigest string `json:"write_set_digest"`
	CommitEvidence string `json:"commit_evidence"`
	ClaimsDigest   string `json:"claims_digest"`
}

// New builds the JSON form of the receipt of transaction txid ("view.seqno").
func New(txid string, leaf LeafComponents, coseReceipt []byte) *Receipt {
	return &Receipt{
		TransactionID: txid,
		LeafComponents: JSONLeafComponents{
			WriteSetDigest: hex.EncodeToString(leaf.WriteSetDigest[:]),
			CommitEvidence: leaf.CommitEvidence,
			ClaimsDigest:   hex.EncodeToString(leaf.ClaimsDigest[:]),
		},
		COSEReceipt: coseReceipt,
	}
}

// ParseJSON decodes the JSON form strictly: exactly the documented fields,
// each once and spelled exactly, no trailing data, a well-formed
// transaction_id, digests as exactly 64 lowercase hex characters,
// cose_receipt as canonical padded standard base64 within MaxReceiptSize, and
// commit_evidence of the form ce:<view>.<seqno>:<64 lowercase hex>. It does
// not verify anything; call Verify.
func ParseJSON(b []byte) (*Receipt, error) {
	if len(b) > MaxJSONSize {
		return nil, fmt.Errorf("%w: JSON receipt is %d bytes, more than the %d byte limit", ErrMalformed, len(b), MaxJSONSize)
	}
	top, err := decodeObject(b, "receipt", "transaction_id", "leaf_components", "cose_receipt")
	if err != nil {
		return nil, err
	}
	var r Receipt
	if r.TransactionID, err = decodeString(top["transaction_id"], "transaction_id"); err != nil {
		return nil, err
	}
	if _, err := parseSeqno(r.TransactionID); err != nil {
		return nil, err
	}
	lc, err := decodeObject(top["leaf_components"], "leaf_components", "write_set_digest", "commit_evidence", "claims_digest")
	if err != nil {
		return nil, err
	}
	fields := []struct {
		name string
		dst  *string
	}{
		{"write_set_digest", &r.LeafComponents.WriteSetDigest},
		{"commit_evidence", &r.LeafComponents.CommitEvidence},
		{"claims_digest", &r.LeafComponents.ClaimsDigest},
	}
	for _, f := range fields {
		if *f.dst, err = decodeString(lc[f.name], "leaf_components."+f.name); err != nil {
			return nil, err
		}
	}
	leaf, err := r.Leaf()
	if err != nil {
		return nil, err
	}
	if _, err := commitEvidenceTxID(leaf.CommitEvidence); err != nil {
		return nil, err
	}
	encoded, err := decodeString(top["cose_receipt"], "cose_receipt")
	if err != nil {
		return nil, err
	}
	if r.COSEReceipt, err = decodeBase64(encoded); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeObject reads one JSON object whose member names are exactly names,
// each present once. encoding/json alone would accept other capitalisations,
// silently keep the last of duplicate members and ignore trailing data.
func decodeObject(data []byte, what string, names ...string) (map[string]json.RawMessage, error) {
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, what, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, malformed("%v", err)
	} else if tok != json.Delim('{') {
		return nil, malformed("want a JSON object")
	}
	members := make(map[string]json.RawMessage, len(names))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("%v", err)
		}
		name := tok.(string) // inside an object, Token returns names as strings
		if !slices.Contains(names, name) {
			return nil, malformed("unknown field %q (want %s)", name, strings.Join(names, ", "))
		}
		if _, dup := members[name]; dup {
			return nil, malformed("duplicate field %q", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, malformed("field %q: %v", name, err)
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, malformed("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("unexpected data after the object")
	}
	for _, name := range names {
		if _, ok := members[name]; !ok {
			return nil, malformed("missing field %q", name)
		}
	}
	return members, nil
}

// decodeString decodes a JSON string; null and other types are refused
// rather than read as "".
func decodeString(raw json.RawMessage, field string) (string, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%w: %s: want a JSON string", ErrMalformed, field)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return s, nil
}

// decodeBase64 accepts exactly what encoding/json produces for []byte.
func decodeBase64(s string) ([]byte, error) {
	if max := base64.StdEncoding.EncodedLen(MaxReceiptSize); len(s) > max {
		return nil, fmt.Errorf("%w: cose_receipt: %d base64 characters, more than the %d of a %d byte receipt", ErrMalformed, len(s), max, MaxReceiptSize)
	}
	// The decoder skips CR and LF, which would give one receipt many
	// encodings.
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("%w: cose_receipt: line break at offset %d; want unbroken standard base64", ErrMalformed, i)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: cose_receipt: not padded standard base64: %v", ErrMalformed, err)
	}
	return b, nil
}

// decodeDigest parses exactly 64 lowercase hex characters.
func decodeDigest(s, field string) ([32]byte, error) {
	var d [32]byte
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("%w: %s: want %d lowercase hex characters, got %d characters", ErrMalformed, field, 2*len(d), len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return d, fmt.Errorf("%w: %s: character %q at offset %d is not a lowercase hex digit", ErrMalformed, field, c, i)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return d, nil
}

// Leaf returns the leaf components with the digests decoded.
func (r *Receipt) Leaf() (LeafComponents, error) {
	ws, err := decodeDigest(r.LeafComponents.WriteSetDigest, "leaf_components.write_set_digest")
	if err != nil {
		return LeafComponents{}, err
	}
	cd, err := decodeDigest(r.LeafComponents.ClaimsDigest, "leaf_components.claims_digest")
	if err != nil {
		return LeafComponents{}, err
	}
	return LeafComponents{WriteSetDigest: ws, CommitEvidence: r.LeafComponents.CommitEvidence, ClaimsDigest: cd}, nil
}

// Verify checks the COSE receipt for the receipt's leaf components against
// serviceCert (see the package function Verify), and that the receipt is
// about transaction_id: the commit evidence, which is inside the signed leaf,
// must name it, and the proof's leaf_index must be the one Coco gives it (one
// leaf per transaction, seqno s at leaf s-1). The commit evidence is what
// authenticates the transaction id; the leaf_index check only catches a
// proof served for the wrong leaf, because RFC 9942 leaves leaf_index
// unsigned (see the package documentation).
func (r *Receipt) Verify(serviceCert *x509.Certificate) error {
	seqno, err := parseSeqno(r.TransactionID)
	if err != nil {
		return err
	}
	leaf, err := r.Leaf()
	if err != nil {
		return err
	}
	named, err := commitEvidenceTxID(leaf.CommitEvidence)
	if err != nil {
		return err
	}
	if serviceCert == nil {
		return fmt.Errorf("%w: no service certificate given", ErrKeyMismatch)
	}
	p, err := verify(r.COSEReceipt, leaf.LeafHash(), serviceCert.PublicKey)
	if err != nil {
		return err
	}
	if named != r.TransactionID {
		return fmt.Errorf("%w: transaction_id is %s but the signed commit evidence is for %s", ErrTxID, r.TransactionID, named)
	}
	if p.LeafIndex != seqno-1 {
		return fmt.Errorf("%w: transaction_id %s is leaf %d, but the proof is for leaf_index %d", ErrTxID, r.TransactionID, seqno-1, p.LeafIndex)
	}
	return nil
}

// commitEvidenceTxID checks that ce is Coco commit evidence,
// "ce:<view>.<seqno>:<64 lowercase hex>", and returns the transaction id it
// names.
func commitEvidenceTxID(ce string) (string, error) {
	const field = "leaf_components.commit_evidence"
	rest, ok := strings.CutPrefix(ce, "ce:")
	colon := strings.LastIndexByte(rest, ':')
	if !ok || colon < 0 {
		return "", fmt.Errorf("%w: %s %q: want \"ce:<view>.<seqno>:<64 lowercase hex>\"", ErrMalformed, field, ce)
	}
	txid := rest[:colon]
	if _, err := txidSeqno(txid); err != nil {
		return "", fmt.Errorf("%w: %s %q: names no transaction: %v", ErrMalformed, field, ce, err)
	}
	if _, err := decodeDigest(rest[colon+1:], field+" secret part"); err != nil {
		return "", err
	}
	return txid, nil
}

// parseSeqno checks that txid is a Coco transaction id and returns its seqno.
func parseSeqno(txid string) (uint64, error) {
	seqno, err := txidSeqno(txid)
	if err != nil {
		return 0, fmt.Errorf("%w: transaction_id: %v", ErrMalformed, err)
	}
	return seqno, nil
}

// txidSeqno checks that txid is a Coco transaction id ("view.seqno", both
// decimal and at least 1, no sign or leading zeros) and returns the seqno.
func txidSeqno(txid string) (uint64, error) {
	id, err := ids.ParseTxID(txid)
	if err != nil {
		return 0, err
	}
	return uint64(id.Seqno), nil
}

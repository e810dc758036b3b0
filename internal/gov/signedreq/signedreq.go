package signedreq

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
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/cocoledger/coco/internal/detcbor"
	"github.com/cocoledger/coco/internal/ids"
)

// Kind is what a request asks the service to do. Each governance endpoint
// takes exactly one kind, so a request signed for one endpoint cannot be
// replayed against another.
type Kind string

const (
	KindProposal   Kind = "proposal"   // submit a proposal
	KindBallot     Kind = "ballot"     // vote on an open proposal
	KindWithdrawal Kind = "withdrawal" // withdraw one's own open proposal
	KindAck        Kind = "ack"        // acknowledge the state digest
)

func (k Kind) valid() bool {
	switch k {
	case KindProposal, KindBallot, KindWithdrawal, KindAck:
		return true
	}
	return false
}

// needsProposal reports whether requests of kind k act on one proposal and
// therefore name it.
func (k Kind) needsProposal() bool { return k == KindBallot || k == KindWithdrawal }

// Labels of the Coco parameters of the protected header. Text labels keep
// clear of the IANA integer registry, as CCF's "ccf.gov.msg.*" do.
const (
	HeaderLabelType       = "coco.gov.msg.type"
	HeaderLabelCreatedAt  = "coco.gov.msg.created_at"
	HeaderLabelService    = "coco.gov.msg.service"
	HeaderLabelProposalID = "coco.gov.msg.proposal_id"
)

// MaxSize bounds an encoded request. The largest legitimate request is a
// proposal carrying a constitution's source, tens of kilobytes.
const MaxSize = 1 << 20

// maxProposalIDLen is the length of a hex SHA-256, the longest proposal id.
const maxProposalIDLen = 64

// contentTypeJSON is the only content type (label 3) a request may declare.
const contentTypeJSON = "application/json"

// tagSign1 is the one-byte encoding of CBOR tag 18, COSE_Sign1_Tagged.
const tagSign1 = 0xd2

var (
	encMode = detcbor.EncMode(true) // nil payloads encode as h'', never null
	// decMode's limits fit the flat COSE_Sign1 structure: the envelope is an
	// array of 4 and the protected header a map of at most 7 flat values.
	decMode = detcbor.DecMode(detcbor.Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
)

// Request is a governance request: what a member signs, or what Parse found
// in a signed request.
type Request struct {
	Kind Kind
	// MemberID is the signer: the kid, which must be the id of the member
	// certificate that verifies the signature.
	MemberID ids.MemberID
	// CreatedAt is when the member signed, to the second.
	CreatedAt time.Time
	// ServiceDigest is the SHA-256 of the DER certificate of the service
	// the request is meant for.
	ServiceDigest [32]byte
	// ProposalID is the proposal a ballot or withdrawal acts on; empty for
	// the other kinds.
	ProposalID string
	// Payload is the request body, opaque to this package.
	Payload []byte
	// Raw is the signed request as Parse received it; Sign ignores it.
	Raw []byte

	// Set by Parse: what Verify and ReplayKey work on. They never look at the
	// exported fields, which are only a decoded copy.
	alg       cose.Algorithm
	tbs       []byte // ToBeSigned: the encoded RFC 9052 Sig_structure
	signature []byte
}

// checkFields checks what Sign and Parse both require of the kind and the
// proposal id.
func checkFields(kind Kind, proposalID string) error {
	if !kind.valid() {
		return fmt.Errorf("kind %q is not one of %q, %q, %q or %q", kind, KindProposal, KindBallot, KindWithdrawal, KindAck)
	}
	switch {
	case kind.needsProposal() && proposalID == "":
		return fmt.Errorf("a %s must name its proposal in %s", kind, HeaderLabelProposalID)
	case !kind.needsProposal() && proposalID != "":
		return fmt.Errorf("a %s acts on no proposal, but %s is %q", kind, HeaderLabelProposalID, proposalID)
	case len(proposalID) > maxProposalIDLen:
		return fmt.Errorf("proposal id is %d characters, more than %d", len(proposalID), maxProposalIDLen)
	case !isLowerHex(proposalID):
		return fmt.Errorf("proposal id %q is not lowercase hex", proposalID)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// algorithmFor returns the COSE algorithm for a member key. Only ECDSA is
// supported, each curve with its own hash, so that one key has one
// algorithm and nothing can be negotiated down.
func algorithmFor(pub crypto.PublicKey) (cose.Algorithm, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return 0, fmt.Errorf("member key is %T, want an ECDSA P-256, P-384 or P-521 key", pub)
	}
	switch k.Curve {
	case elliptic.P256():
		return cose.AlgorithmES256, nil
	case elliptic.P384():
		return cose.AlgorithmES384, nil
	case elliptic.P521():
		return cose.AlgorithmES512, nil
	}
	return 0, fmt.Errorf("member key is on curve %s, want P-256, P-384 or P-521", k.Curve.Params().Name)
}

// Sign signs r with key, the private key of memberCert, and returns the
// encoded COSE_Sign1_Tagged request. The kid is memberCert's id; r.MemberID,
// if set, must be that id. r.CreatedAt is truncated to the second. The
// algorithm follows from the key's curve. rand is passed to the signer.
func Sign(rand io.Reader, key crypto.Signer, memberCert *x509.Certificate, r Request) ([]byte, error) {
	if memberCert == nil {
		return nil, errors.New("signedreq: no member certificate")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(memberCert.PublicKey) {
		return nil, errors.New("signedreq: the signing key is not the key of the member certificate")
	}
	alg, err := algorithmFor(memberCert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("signedreq: %v", err)
	}
	id := ids.MemberID(ids.Fingerprint(memberCert.Raw))
	if r.MemberID != "" && r.MemberID != id {
		return nil, fmt.Errorf("signedreq: request names member %s but the certificate is member %s", r.MemberID, id)
	}
	if err := checkFields(r.Kind, r.ProposalID); err != nil {
		return nil, fmt.Errorf("signedreq: %v", err)
	}
	if r.CreatedAt.Unix() < 0 {
		return nil, fmt.Errorf("signedreq: CreatedAt %v is not set or before 1970", r.CreatedAt)
	}
	if r.ServiceDigest == [32]byte{} {
		return nil, errors.New("signedreq: ServiceDigest is not set: want the SHA-256 of the service certificate's DER")
	}

	header := map[any]any{
		cose.HeaderLabelAlgorithm: int64(alg),
		cose.HeaderLabelKeyID:     []byte(id),
		HeaderLabelType:           string(r.Kind),
		HeaderLabelCreatedAt:      uint64(r.CreatedAt.Unix()),
		HeaderLabelService:        r.ServiceDigest[:],
	}
	if r.ProposalID != "" {
		header[HeaderLabelProposalID] = r.ProposalID
	}
	protected, err := encMode.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("signedreq: encoding protected header: %w", err)
	}
	tbs, err := toBeSigned(protected, r.Payload)
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		return nil, fmt.Errorf("signedreq: %w", err)
	}
	sig, err := signer.Sign(rand, tbs)
	if err != nil {
		return nil, fmt.Errorf("signedreq: signing: %w", err)
	}
	out, err := encodeEnvelope(protected, r.Payload, sig)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("signedreq: signed request is %d bytes, more than the %d byte limit", len(out), MaxSize)
	}
	return out, nil
}

// toBeSigned encodes the RFC 9052 §4.4 Sig_structure of a COSE_Sign1 with
// no external data: ["Signature1", protected, empty bstr, payload].
func toBeSigned(protected, payload []byte) ([]byte, error) {
	b, err := encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
	if err != nil {
		return nil, fmt.Errorf("signedreq: encoding Sig_structure: %w", err)
	}
	return b, nil
}

// envelope is COSE_Sign1, the content of tag 18.
type envelope struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int]int // always empty
	Payload     []byte
	Signature   []byte
}

// encodeEnvelope returns the deterministic encoding of a COSE_Sign1_Tagged
// with an empty unprotected header; Parse accepts no other.
func encodeEnvelope(protected, payload, sig []byte) ([]byte, error) {
	b, err := encMode.Marshal(cbor.Tag{Number: cose.CBORTagSign1Message, Content: envelope{
		Protected: protected,
		Payload:   payload,
		Signature: sig,
	}})
	if err != nil {
		return nil, fmt.Errorf("signedreq: encoding COSE_Sign1: %w", err)
	}
	return b, nil
}

// malformed returns an error matching ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// CBOR major types.
const (
	majorUint  = 0
	majorNeg   = 1
	majorBytes = 2
	majorText  = 3
	majorMap   = 5
)

// decodeAs decodes raw into v after checking raw's major type, because the
// CBOR library converts between types (text into []byte, an array of small
// integers into []byte, bytes into string) that must stay distinct here.
func decodeAs(raw cbor.RawMessage, major byte, v any) error {
	if len(raw) == 0 || raw[0]>>5 != major {
		return errors.New("wrong CBOR type")
	}
	return decMode.Unmarshal(raw, v)
}

// Parse decodes a signed request and checks everything that needs no key:
// size, a deterministically encoded COSE_Sign1_Tagged with an empty
// unprotected header and an attached payload, and a protected header with
// exactly the parameters of the format, each well-typed. It does not verify
// the signature: see Verify and Checker.Check. Every error matches
// ErrMalformed. Parse keeps a copy of raw.
func Parse(raw []byte) (*Request, error) {
	if len(raw) > MaxSize {
		return nil, malformed("%d bytes, more than the %d byte limit", len(raw), MaxSize)
	}
	if len(raw) == 0 || raw[0] != tagSign1 {
		return nil, malformed("not a COSE_Sign1_Tagged message: it must start with CBOR tag 18 (0xd2)")
	}
	var items []cbor.RawMessage
	if err := decMode.Unmarshal(raw[1:], &items); err != nil {
		return nil, malformed("COSE_Sign1 is not a well-formed CBOR array within limits: %v", err)
	}
	if len(items) != 4 {
		return nil, malformed("COSE_Sign1 has %d elements, want 4: [protected, unprotected, payload, signature]", len(items))
	}
	var protected, payload, sig []byte
	if err := decodeAs(items[0], majorBytes, &protected); err != nil {
		return nil, malformed("protected header must be a byte string: %v", err)
	}
	if !bytes.Equal(items[1], []byte{0xa0}) {
		return nil, malformed("unprotected header must be the empty map: it is not signed and Coco reads nothing from it")
	}
	if bytes.Equal(items[2], []byte{0xf6}) {
		return nil, malformed("payload is detached (nil): the request body must be the payload")
	}
	if err := decodeAs(items[2], majorBytes, &payload); err != nil {
		return nil, malformed("payload must be a byte string: %v", err)
	}
	if err := decodeAs(items[3], majorBytes, &sig); err != nil {
		return nil, malformed("signature must be a byte string: %v", err)
	}
	canonical, err := encodeEnvelope(protected, payload, sig)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, raw) {
		return nil, malformed("COSE_Sign1 is not deterministically encoded (RFC 8949 §4.2.1), or has trailing data")
	}
	r := &Request{Payload: payload, signature: sig}
	if err := r.parseProtected(protected); err != nil {
		return nil, err
	}
	if r.tbs, err = toBeSigned(protected, payload); err != nil {
		return nil, err
	}
	r.Raw = slices.Clone(raw)
	return r, nil
}

// parseProtected fills r from the protected header. The map's own encoding
// is left as the signer made it (other COSE libraries do not sort keys); it
// is signed, so nobody else can change it.
func (r *Request) parseProtected(b []byte) error {
	if len(b) == 0 || b[0]>>5 != majorMap {
		return malformed("protected header must be an encoded map")
	}
	var h map[any]cbor.RawMessage
	if err := decMode.Unmarshal(b, &h); err != nil {
		return malformed("protected header is not a well-formed CBOR map within limits: %v", err)
	}
	// take removes a parameter, so that what is left at the end is unknown.
	take := func(label any) cbor.RawMessage {
		v := h[label]
		delete(h, label)
		return v
	}

	var alg int64
	err := decodeAs(take(uint64(cose.HeaderLabelAlgorithm)), majorNeg, &alg)
	switch r.alg = cose.Algorithm(alg); {
	case err != nil:
		return malformed("protected header alg (1) is missing or not a negative integer: want -7 (ES256), -35 (ES384) or -36 (ES512)")
	case r.alg != cose.AlgorithmES256 && r.alg != cose.AlgorithmES384 && r.alg != cose.AlgorithmES512:
		return malformed("alg (1) is %d, want -7 (ES256), -35 (ES384) or -36 (ES512)", alg)
	}

	var kid []byte
	if err := decodeAs(take(uint64(cose.HeaderLabelKeyID)), majorBytes, &kid); err != nil {
		return malformed("protected header kid (4) is missing or not a byte string")
	}
	if len(kid) != 2*sha256.Size || !isLowerHex(string(kid)) {
		return malformed("kid (4) must be the member id, 64 lowercase hex characters (as bytes), found %q", kid)
	}
	r.MemberID = ids.MemberID(kid)

	if v := take(uint64(cose.HeaderLabelContentType)); v != nil {
		var cty string
		if err := decodeAs(v, majorText, &cty); err != nil || cty != contentTypeJSON {
			return malformed("content type (3), if present, must be the text %q", contentTypeJSON)
		}
	}

	var kind string
	if err := decodeAs(take(HeaderLabelType), majorText, &kind); err != nil {
		return malformed("protected header %s is missing or not text", HeaderLabelType)
	}
	r.Kind = Kind(kind)

	var created uint64
	if err := decodeAs(take(HeaderLabelCreatedAt), majorUint, &created); err != nil {
		return malformed("protected header %s is missing or not an unsigned integer (seconds since the Unix epoch)", HeaderLabelCreatedAt)
	}
	if created > math.MaxInt64 {
		return malformed("%s %d is out of range", HeaderLabelCreatedAt, created)
	}
	r.CreatedAt = time.Unix(int64(created), 0).UTC()

	var service []byte
	if err := decodeAs(take(HeaderLabelService), majorBytes, &service); err != nil || len(service) != sha256.Size {
		return malformed("protected header %s is missing or not a 32-byte byte string (SHA-256 of the service certificate)", HeaderLabelService)
	}
	r.ServiceDigest = [32]byte(service)

	if v := take(HeaderLabelProposalID); v != nil {
		if err := decodeAs(v, majorText, &r.ProposalID); err != nil || r.ProposalID == "" {
			return malformed("%s must be non-empty text", HeaderLabelProposalID)
		}
	}
	if err := checkFields(r.Kind, r.ProposalID); err != nil {
		return malformed("%v", err)
	}

	if len(h) > 0 {
		unknown := make([]string, 0, len(h))
		for label := range h {
			if s, ok := label.(string); ok {
				unknown = append(unknown, strconv.Quote(s))
			} else {
				unknown = append(unknown, fmt.Sprint(label))
			}
		}
		slices.Sort(unknown)
		return malformed("protected header has parameters Coco does not define: %s: remove them", strings.Join(unknown, ", "))
	}
	return nil
}

// Verify checks that r, as returned by Parse, is signed by the key of
// cert, and that its kid is cert's member id. Only the certificate's public
// key and DER are used: whether cert is a current member's is the caller's
// concern. Errors match ErrBadSignature.
func (r *Request) Verify(cert *x509.Certificate) error {
	if r.tbs == nil {
		return fmt.Errorf("%w: the request was not returned by Parse, nothing to verify", ErrBadSignature)
	}
	if cert == nil {
		return fmt.Errorf("%w: no member certificate", ErrBadSignature)
	}
	if id := ids.MemberID(ids.Fingerprint(cert.Raw)); r.MemberID != id {
		return fmt.Errorf("%w: request is signed by member %s (kid) but the certificate is member %s", ErrBadSignature, r.MemberID, id)
	}
	want, err := algorithmFor(cert.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if r.alg != want {
		return fmt.Errorf("%w: request alg is %v but the member key needs %v", ErrBadSignature, r.alg, want)
	}
	verifier, err := cose.NewVerifier(r.alg, cert.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if err := verifier.Verify(r.tbs, r.signature); err != nil {
		return fmt.Errorf("%w: the signature does not verify with member %s's key: the request was altered or signed with another key", ErrBadSignature, r.MemberID)
	}
	return nil
}

// ReplayKey returns the key under which a ReplayGuard remembers r: the
// SHA-256 of its ToBeSigned bytes, the Sig_structure over the protected
// header and the payload. It covers everything the member signed and
// nothing else, so it is the same for every encoding of the same signed
// content: a re-signature, or the ECDSA (r, n−s) twin of the signature,
// does not make a request new. r must come from Parse; ReplayKey panics
// otherwise.
func (r *Request) ReplayKey() [32]byte {
	if r.tbs == nil {
		panic("signedreq: ReplayKey of a Request not returned by Parse")
	}
	return sha256.Sum256(r.tbs)
}

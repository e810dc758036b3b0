package signedreq

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

func TestRoundTrip(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		m := newMember(t, curve)
		for _, k := range allKinds {
			t.Run(curve.Params().Name+"/"+string(k), func(t *testing.T) {
				want := request(k)
				want.CreatedAt = testNow.Add(999 * time.Millisecond) // signed to the second
				raw := m.sign(t, want)
				got, err := Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				want.MemberID, want.CreatedAt = m.id, testNow
				if !sameFields(got, &want) {
					t.Fatalf("Parse = %+v, want %+v", got, want)
				}
				if !bytes.Equal(got.Raw, raw) {
					t.Fatal("Raw is not the parsed bytes")
				}
				if err := got.Verify(m.cert); err != nil {
					t.Fatal(err)
				}
				c := newChecker()
				if _, err := c.Check(testNow, raw, k, want.ProposalID, m.lookup); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestSignRefusesMistakes(t *testing.T) {
	m := newMember(t, elliptic.P256())
	other := newMember(t, elliptic.P256())
	for name, tc := range map[string]struct {
		modify func(*Request)
		key    member // whose key signs m's certificate
		want   string
	}{
		"key of another member": {func(*Request) {}, other, "not the key of the member certificate"},
		"unknown kind":          {func(r *Request) { r.Kind = "vote" }, m, `kind "vote"`},
		"ballot, no proposal":   {func(r *Request) { r.Kind, r.ProposalID = KindBallot, "" }, m, "must name its proposal"},
		"proposal with id":      {func(r *Request) { r.ProposalID = testProposal }, m, "acts on no proposal"},
		"uppercase proposal":    {func(r *Request) { r.Kind, r.ProposalID = KindBallot, "ABCD" }, m, "not lowercase hex"},
		"long proposal":         {func(r *Request) { r.Kind, r.ProposalID = KindBallot, testProposal+"0" }, m, "more than 64"},
		"no created_at":         {func(r *Request) { r.CreatedAt = time.Time{} }, m, "CreatedAt"},
		"no service":            {func(r *Request) { r.ServiceDigest = [32]byte{} }, m, "ServiceDigest"},
		"other member id":       {func(r *Request) { r.MemberID = other.id }, m, "certificate is member " + string(m.id)},
		"too large":             {func(r *Request) { r.Payload = make([]byte, MaxSize) }, m, "limit"},
	} {
		t.Run(name, func(t *testing.T) {
			r := request(KindProposal)
			tc.modify(&r)
			_, err := Sign(rand.Reader, tc.key.key, m.cert, r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Sign: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestVerifyRefusesOtherSigners(t *testing.T) {
	m := newMember(t, elliptic.P256())
	raw := m.sign(t, request(KindBallot))
	r, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}

	// Another member's certificate: its id is not the kid.
	other := newMember(t, elliptic.P256())
	err = r.Verify(other.cert)
	wantOnly(t, err, ErrBadSignature)
	if !strings.Contains(err.Error(), "certificate is member "+string(other.id)) {
		t.Fatalf("message does not name the certificate's member: %v", err)
	}

	// Another certificate for the same key: the signature would verify, but
	// the request names the first certificate.
	reissued := member{key: m.key, cert: certFor(t, m.key)}.withID()
	wantOnly(t, r.Verify(reissued.cert), ErrBadSignature)

	// A request naming other but signed with m's key.
	forged := m.signHeader(t, other.header(request(KindBallot)), []byte(`{"vote": true}`))
	fr, err := Parse(forged)
	if err != nil {
		t.Fatal(err)
	}
	err = fr.Verify(other.cert)
	wantOnly(t, err, ErrBadSignature)
	if !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("message does not say the signature failed: %v", err)
	}

	// alg ES384 in the header of a request from a P-256 member.
	h := m.header(request(KindBallot))
	h[cose.HeaderLabelAlgorithm] = int64(cose.AlgorithmES384)
	ar, err := Parse(m.signHeader(t, h, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Verify(m.cert); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "needs ES256") {
		t.Fatalf("alg mismatch: %v", err)
	}

	// A Request built by hand has nothing signed to verify.
	hand := request(KindBallot)
	wantOnly(t, hand.Verify(m.cert), ErrBadSignature)
}

// TestEveryByteIsCovered flips bits in every byte of a small request: each
// change must make Parse or Verify fail. There is no unprotected header to
// change freely (Parse requires it empty), so no byte is exempt.
func TestEveryByteIsCovered(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		m := newMember(t, curve)
		raw := m.sign(t, request(KindWithdrawal))
		var malformed, badSig int
		for i := range raw {
			for _, mask := range []byte{0x01, 0x20, 0x80, 0xff} {
				b := bytes.Clone(raw)
				b[i] ^= mask
				r, err := Parse(b)
				if err == nil {
					err = r.Verify(m.cert)
				}
				switch {
				case errors.Is(err, ErrMalformed):
					malformed++
				case errors.Is(err, ErrBadSignature):
					badSig++
				default:
					t.Fatalf("%s: byte %d ^ %#x: %v", curve.Params().Name, i, mask, err)
				}
			}
		}
		t.Logf("%s: %d bytes, %d changes refused by Parse, %d by Verify", curve.Params().Name, len(raw), malformed, badSig)
	}
}

func TestParseRefuses(t *testing.T) {
	m := newMember(t, elliptic.P256())
	base := request(KindBallot)
	good := m.sign(t, base)
	with := func(label any, value any) []byte {
		h := m.header(base)
		if value == nil {
			delete(h, label)
		} else {
			h[label] = value
		}
		return m.signHeader(t, h, base.Payload)
	}
	goCose := func(edit func(*cose.Sign1Message)) []byte {
		msg := cose.NewSign1Message()
		for k, v := range m.header(base) {
			msg.Headers.Protected[k] = v
		}
		msg.Headers.Protected[cose.HeaderLabelAlgorithm] = cose.AlgorithmES256
		msg.Payload = base.Payload
		edit(msg)
		signer, err := cose.NewSigner(cose.AlgorithmES256, m.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := msg.Sign(rand.Reader, nil, signer); err != nil {
			t.Fatal(err)
		}
		b, err := msg.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	detached := func() []byte {
		var msg cose.Sign1Message
		if err := msg.UnmarshalCBOR(good); err != nil {
			t.Fatal(err)
		}
		msg.Payload = nil
		b, err := msg.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	for name, tc := range map[string]struct {
		raw  []byte
		want string
	}{
		"empty":             {nil, "tag 18"},
		"untagged":          {good[1:], "tag 18"},
		"other tag":         {append([]byte{0xd8, 0x62}, good[1:]...), "tag 18"},
		"trailing data":     {append(bytes.Clone(good), 0x00), "well-formed"},
		"oversize":          {make([]byte, MaxSize+1), "limit"},
		"array of 3":        {[]byte{0xd2, 0x83, 0x40, 0xa0, 0x40}, "3 elements"},
		"detached payload":  {detached(), "detached"},
		"unprotected kid":   {goCose(func(m *cose.Sign1Message) { m.Headers.Unprotected[cose.HeaderLabelKeyID] = []byte("x") }), "unprotected header must be the empty map"},
		"long length":       {longPayloadLength(t, good), "deterministically encoded"},
		"protected not map": {m.signProtected(t, []byte{0x80}, nil), "encoded map"},
		"empty protected":   {m.signProtected(t, nil, nil), "encoded map"},
		"no alg":            {with(cose.HeaderLabelAlgorithm, nil), "alg (1)"},
		"alg EdDSA":         {with(cose.HeaderLabelAlgorithm, int64(cose.AlgorithmEdDSA)), "alg (1) is -8"},
		"alg as text":       {with(cose.HeaderLabelAlgorithm, "ES256"), "alg (1)"},
		"no kid":            {with(cose.HeaderLabelKeyID, nil), "kid (4)"},
		"kid as text":       {with(cose.HeaderLabelKeyID, string(m.id)), "kid (4)"},
		"kid uppercase":     {with(cose.HeaderLabelKeyID, []byte(strings.ToUpper(string(m.id)))), "64 lowercase hex"},
		"kid raw digest":    {with(cose.HeaderLabelKeyID, make([]byte, 32)), "64 lowercase hex"},
		"cty cbor":          {with(cose.HeaderLabelContentType, "application/cbor"), "content type (3)"},
		"cty as int":        {with(cose.HeaderLabelContentType, uint64(50)), "content type (3)"},
		"no type":           {with(HeaderLabelType, nil), HeaderLabelType},
		"unknown type":      {with(HeaderLabelType, "vote"), `kind "vote"`},
		"type as bytes":     {with(HeaderLabelType, []byte("ballot")), HeaderLabelType},
		"no created_at":     {with(HeaderLabelCreatedAt, nil), HeaderLabelCreatedAt},
		"created_at < 0":    {with(HeaderLabelCreatedAt, int64(-1)), HeaderLabelCreatedAt},
		"created_at float":  {with(HeaderLabelCreatedAt, 1.8e9), HeaderLabelCreatedAt},
		"created_at huge":   {with(HeaderLabelCreatedAt, uint64(1)<<63), "out of range"},
		"created_at text":   {with(HeaderLabelCreatedAt, "2027-01-15T08:00:00Z"), HeaderLabelCreatedAt},
		"no service":        {with(HeaderLabelService, nil), HeaderLabelService},
		"service 31 bytes":  {with(HeaderLabelService, testService[:31]), HeaderLabelService},
		"service as hex":    {with(HeaderLabelService, "00"), HeaderLabelService},
		"no proposal id":    {with(HeaderLabelProposalID, nil), "must name its proposal"},
		"empty proposal id": {with(HeaderLabelProposalID, ""), "non-empty"},
		"upper proposal id": {with(HeaderLabelProposalID, strings.ToUpper(testProposal)), "lowercase hex"},
		"proposal id bytes": {with(HeaderLabelProposalID, []byte(testProposal)), HeaderLabelProposalID},
		"unknown label":     {with("coco.gov.msg.nonce", uint64(7)), `"coco.gov.msg.nonce"`},
		"CCF label":         {with("ccf.gov.msg.type", "ballot"), `"ccf.gov.msg.type"`},
		"crit":              {with(cose.HeaderLabelCritical, []any{HeaderLabelType}), "define: 2:"},
		"negative label":    {with(int64(-65537), uint64(1)), "define: -65537:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.raw)
			wantOnly(t, err, ErrMalformed)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v\ndoes not mention %q", err, tc.want)
			}
		})
	}

	// An ack must not name a proposal.
	ack := request(KindAck)
	h := m.header(ack)
	h[HeaderLabelProposalID] = testProposal
	if _, err := Parse(m.signHeader(t, h, ack.Payload)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "acts on no proposal") {
		t.Fatalf("ack with a proposal id: %v", err)
	}
}

// longPayloadLength re-encodes the payload length of raw in 8 bytes, which
// decodes to the same message but is not the deterministic encoding.
func longPayloadLength(t *testing.T, raw []byte) []byte {
	t.Helper()
	var items []cbor.RawMessage
	if err := cbor.Unmarshal(raw[1:], &items); err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := cbor.Unmarshal(items[2], &payload); err != nil {
		t.Fatal(err)
	}
	long := []byte{0x5b, 0, 0, 0, 0, 0, 0, 0, byte(len(payload))}
	out := []byte{0xd2, 0x84}
	for i, it := range items {
		if i == 2 {
			out = append(append(out, long...), payload...)
			continue
		}
		out = append(out, it...)
	}
	return out
}

// TestProtectedHeaderFormat pins the wire format: the protected header Sign
// makes for a ballot, in CBOR diagnostic notation.
func TestProtectedHeaderFormat(t *testing.T) {
	m := newMember(t, elliptic.P384())
	raw := m.sign(t, request(KindBallot))
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		t.Fatal(err)
	}
	var protected []byte
	if err := cbor.Unmarshal(msg.Headers.RawProtected, &protected); err != nil {
		t.Fatal(err)
	}
	diag, err := cbor.Diagnose(protected)
	if err != nil {
		t.Fatal(err)
	}
	want := `{1: -35, 4: h'` + hexOf([]byte(m.id)) + `', ` +
		`"coco.gov.msg.type": "ballot", ` +
		`"coco.gov.msg.service": h'` + hexOf(testService[:]) + `', ` +
		`"coco.gov.msg.created_at": 1800000000, ` +
		`"coco.gov.msg.proposal_id": "` + testProposal + `"}`
	if diag != want {
		t.Fatalf("protected header\n got %s\nwant %s", diag, want)
	}
	if len(msg.Headers.Unprotected) != 0 || !bytes.Equal(msg.Payload, []byte(`{"vote": true}`)) {
		t.Fatalf("unprotected %v, payload %q", msg.Headers.Unprotected, msg.Payload)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// TestInteropGoCOSE checks that the format is plain COSE_Sign1: requests
// made with go-cose's own Sign1Message API, as other tooling would, pass
// Check, and go-cose verifies what Sign makes.
func TestInteropGoCOSE(t *testing.T) {
	for _, tc := range []struct {
		curve elliptic.Curve
		alg   cose.Algorithm
	}{{elliptic.P256(), cose.AlgorithmES256}, {elliptic.P384(), cose.AlgorithmES384}} {
		m := newMember(t, tc.curve)
		t.Run(tc.curve.Params().Name, func(t *testing.T) {
			signer, err := cose.NewSigner(tc.alg, m.key)
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := cose.NewVerifier(tc.alg, m.key.Public())
			if err != nil {
				t.Fatal(err)
			}

			// go-cose makes, we check.
			msg := cose.NewSign1Message()
			msg.Headers.Protected.SetAlgorithm(tc.alg)
			msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(m.id)
			msg.Headers.Protected[cose.HeaderLabelContentType] = "application/json"
			msg.Headers.Protected[HeaderLabelType] = "ballot"
			msg.Headers.Protected[HeaderLabelCreatedAt] = testNow.Unix()
			msg.Headers.Protected[HeaderLabelService] = testService[:]
			msg.Headers.Protected[HeaderLabelProposalID] = testProposal
			msg.Payload = []byte(`{"vote": false}`)
			if err := msg.Sign(rand.Reader, nil, signer); err != nil {
				t.Fatal(err)
			}
			raw, err := msg.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			r, err := newChecker().Check(testNow, raw, KindBallot, testProposal, m.lookup)
			if err != nil {
				t.Fatalf("Check of a go-cose request: %v", err)
			}
			if r.MemberID != m.id || string(r.Payload) != `{"vote": false}` || !r.CreatedAt.Equal(testNow) {
				t.Fatalf("decoded %+v", r)
			}

			// A protected header in insertion order, as pycose (CCF's
			// ccf_cose_sign1) encodes it, is verified as encoded.
			unsorted := unsortedHeader(t, tc.alg, m)
			raw = m.signProtected(t, unsorted, []byte(`{"vote": true}`))
			if _, err := newChecker().Check(testNow, raw, KindBallot, testProposal, m.lookup); err != nil {
				t.Fatalf("Check of an unsorted protected header: %v", err)
			}

			// We make, go-cose verifies.
			raw = m.sign(t, request(KindProposal))
			var got cose.Sign1Message
			if err := got.UnmarshalCBOR(raw); err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(nil, verifier); err != nil {
				t.Fatalf("go-cose cannot verify Sign's output: %v", err)
			}
		})
	}
}

// unsortedHeader encodes a ballot's protected header with created_at
// before type and the kid last: valid CBOR, not in deterministic order.
func unsortedHeader(t *testing.T, alg cose.Algorithm, m member) []byte {
	t.Helper()
	out := []byte{0xa6}
	for _, kv := range [][2]any{
		{HeaderLabelCreatedAt, testNow.Unix()},
		{HeaderLabelType, "ballot"},
		{HeaderLabelProposalID, testProposal},
		{HeaderLabelService, testService[:]},
		{cose.HeaderLabelAlgorithm, int64(alg)},
		{cose.HeaderLabelKeyID, []byte(m.id)},
	} {
		for _, v := range kv {
			b, err := cbor.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	if sorted, _ := encMode.Marshal(m.header(request(KindBallot))); bytes.Equal(sorted, out) {
		t.Fatal("header is sorted after all")
	}
	return out
}

func TestReplayKeyIgnoresSignature(t *testing.T) {
	m := newMember(t, elliptic.P256())
	r := request(KindBallot)
	a, b := m.sign(t, r), m.sign(t, r)
	if bytes.Equal(a, b) {
		t.Fatal("ECDSA signatures are randomised; two signatures should differ")
	}
	pa, _ := Parse(a)
	pb, _ := Parse(b)
	if pa.ReplayKey() != pb.ReplayKey() {
		t.Fatal("two signatures over the same content have different replay keys")
	}
	r.CreatedAt = r.CreatedAt.Add(time.Second)
	pc, _ := Parse(m.sign(t, r))
	if pc.ReplayKey() == pa.ReplayKey() {
		t.Fatal("another created_at gives the same replay key")
	}
	if pa.ReplayKey() != sha256.Sum256(pa.tbs) {
		t.Fatal("replay key is not SHA-256(ToBeSigned)")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ReplayKey of a hand-built Request did not panic")
		}
	}()
	(&Request{}).ReplayKey()
}

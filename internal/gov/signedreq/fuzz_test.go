package signedreq

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"testing"
	"time"
)

// FuzzParse: Parse never panics, refuses with ErrMalformed only, and what
// it accepts is a consistent Request that re-parses identically. Verify and
// ReplayKey must not panic on anything Parse accepts.
func FuzzParse(f *testing.F) {
	m := newMember(f, elliptic.P256())
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		signer := newMember(f, curve)
		for _, k := range allKinds {
			raw := signer.sign(f, request(k))
			f.Add(raw)
			f.Add(malleate(f, raw, curve))
		}
	}
	good := m.sign(f, request(KindBallot))
	h := m.header(request(KindBallot))
	h[3] = "application/json"
	f.Add(m.signHeader(f, h, nil))
	h["coco.gov.msg.nonce"] = uint64(1)
	f.Add(m.signHeader(f, h, nil))
	f.Add(good[1:])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not match ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(r.Raw, raw) {
			t.Fatal("Raw is not the input")
		}
		switch {
		case !r.Kind.valid():
			t.Fatalf("accepted kind %q", r.Kind)
		case r.Kind.needsProposal() != (r.ProposalID != ""):
			t.Fatalf("accepted a %s with proposal id %q", r.Kind, r.ProposalID)
		case len(r.MemberID) != 64 || !isLowerHex(string(r.MemberID)):
			t.Fatalf("accepted member id %q", r.MemberID)
		case r.CreatedAt.Location() != time.UTC || r.CreatedAt.Unix() < 0:
			t.Fatalf("accepted created_at %v", r.CreatedAt)
		}
		again, err := Parse(r.Raw)
		if err != nil {
			t.Fatalf("accepted, then refused on re-parse: %v", err)
		}
		if !sameFields(r, again) || r.ReplayKey() != again.ReplayKey() {
			t.Fatalf("re-parse differs: %+v, %+v", r, again)
		}
		if err := r.Verify(m.cert); err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify error %v does not match ErrBadSignature", err)
		}
	})
}

package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func newKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func mustReportData(t *testing.T, pub crypto.PublicKey) ReportData {
	t.Helper()
	rd, err := ReportDataForKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

func refusalReason(err error) string {
	if err == nil {
		return ""
	}
	var re *RefusedError
	if !errors.As(err, &re) {
		return "not a RefusedError: " + err.Error()
	}
	return re.Reason
}

func TestPolicyCheck(t *testing.T) {
	key, other := newKey(t), newKey(t)
	rd := mustReportData(t, key)
	allowed, _ := ParseMeasurement(testCodeID)
	otherM := Measurement(make([]byte, 32))
	virtualOK := PlatformPolicy{Measurements: []string{testCodeID}, AllowInsecure: true}
	// Upper-case allow-list entries match too.
	upper := PlatformPolicy{Measurements: []string{"00", strings.ToUpper(testCodeID)}, AllowInsecure: true}

	ver := func(platform string, m Measurement, rd ReportData, secure bool) *Verified {
		return &Verified{Platform: platform, Measurement: m, ReportData: rd, Secure: secure}
	}
	cases := []struct {
		name   string
		policy Policy
		v      *Verified
		pub    crypto.PublicKey
		want   string
	}{
		{"accepted", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed, rd, false), key, ""},
		{"accepted upper-case allow-list", Policy{map[string]PlatformPolicy{"virtual": upper}}, ver("virtual", allowed, rd, false), key, ""},
		{"accepted secure", Policy{map[string]PlatformPolicy{"sev-snp": {Measurements: []string{testCodeID}}}}, ver("sev-snp", allowed, rd, true), key, ""},
		{"nil verified", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, nil, key, ReasonEvidenceInvalid},
		{"empty policy", Policy{}, ver("virtual", allowed, rd, false), key, ReasonPlatformNotAccepted},
		{"other platform", Policy{map[string]PlatformPolicy{"sev-snp": virtualOK}}, ver("virtual", allowed, rd, false), key, ReasonPlatformNotAccepted},
		{"insecure not allowed", Policy{map[string]PlatformPolicy{"virtual": {Measurements: []string{testCodeID}}}}, ver("virtual", allowed, rd, false), key, ReasonInsecureNotAllowed},
		{"other key", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed, rd, false), other, ReasonReportDataMismatch},
		{"zero report data", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed, ReportData{}, false), key, ReasonReportDataMismatch},
		{"second half not zero", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed, func() ReportData { r := rd; r[63] = 1; return r }(), false), key, ReasonReportDataMismatch},
		{"nil key", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed, rd, false), nil, ReasonReportDataMismatch},
		{"measurement not allowed", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", otherM, rd, false), key, ReasonMeasurementNotAllowed},
		{"empty allow-list", Policy{map[string]PlatformPolicy{"virtual": {AllowInsecure: true}}}, ver("virtual", allowed, rd, false), key, ReasonMeasurementNotAllowed},
		{"empty measurement", Policy{map[string]PlatformPolicy{"virtual": {Measurements: []string{""}, AllowInsecure: true}}}, ver("virtual", nil, rd, false), key, ReasonMeasurementNotAllowed},
		{"prefix of allowed", Policy{map[string]PlatformPolicy{"virtual": virtualOK}}, ver("virtual", allowed[:31], rd, false), key, ReasonMeasurementNotAllowed},
	}
	// Hardware evidence: debug, TCB, host data, RTMRs.
	snp := func(mod func(v *Verified)) *Verified {
		v := ver("sev-snp", allowed, rd, true)
		v.TCBVersion = []byte{3, 0, 0, 0, 0, 0, 8, 115}
		v.HostData = []byte{0xaa, 0xbb}
		v.RTMRs = [][]byte{{1}, {2}, {3}, {4}}
		if mod != nil {
			mod(v)
		}
		return v
	}
	strict := PlatformPolicy{Measurements: []string{testCodeID}, MinTCB: "0300000000000873", HostData: []string{"AABB"}, RTMRs: []string{"", "02"}}
	withStrict := func(mod func(pp *PlatformPolicy)) Policy {
		pp := strict
		if mod != nil {
			mod(&pp)
		}
		return Policy{map[string]PlatformPolicy{"sev-snp": pp}}
	}
	cases = append(cases, []struct {
		name   string
		policy Policy
		v      *Verified
		pub    crypto.PublicKey
		want   string
	}{
		{"hardware accepted at the minimum", withStrict(nil), snp(nil), key, ""},
		{"hardware accepted above the minimum", withStrict(nil), snp(func(v *Verified) { v.TCBVersion[7] = 200 }), key, ""},
		{"debug not allowed", withStrict(nil), snp(func(v *Verified) { v.Debug = true }), key, ReasonDebugNotAllowed},
		{"debug allowed", withStrict(func(pp *PlatformPolicy) { pp.AllowDebug = true }), snp(func(v *Verified) { v.Debug = true }), key, ""},
		{"one component below", withStrict(nil), snp(func(v *Verified) { v.TCBVersion = []byte{3, 0, 0, 0, 0, 0, 7, 200} }), key, ReasonTCBTooLow},
		{"minimum of another layout", withStrict(func(pp *PlatformPolicy) { pp.MinTCB = "03" }), snp(nil), key, ReasonTCBTooLow},
		{"host data not named", withStrict(nil), snp(func(v *Verified) { v.HostData = []byte{0xaa} }), key, ReasonHostDataNotAllowed},
		{"any host data", withStrict(func(pp *PlatformPolicy) { pp.HostData = nil }), snp(func(v *Verified) { v.HostData = []byte{1} }), key, ""},
		{"RTMR differs", withStrict(nil), snp(func(v *Verified) { v.RTMRs[1] = []byte{9} }), key, ReasonRTMRMismatch},
		{"RTMR missing", withStrict(nil), snp(func(v *Verified) { v.RTMRs = v.RTMRs[:1] }), key, ReasonRTMRMismatch},
	}...)
	seen := map[string]bool{}
	for _, c := range cases {
		err := c.policy.Check(c.v, c.pub)
		if got := refusalReason(err); got != c.want {
			t.Errorf("%s: Check = %v, want reason %q", c.name, err, c.want)
			continue
		}
		if err != nil {
			seen[c.want] = true
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v does not match ErrRefused or name its reason", c.name, err)
			}
		}
	}
	if c := (&RefusedError{Reason: ReasonReportDataMismatch, Err: ErrPublicKey}); !errors.Is(c, ErrPublicKey) {
		t.Error("RefusedError does not unwrap")
	}
	// Every reason has a Check case above.
	for _, r := range Reasons() {
		if !seen[r] {
			t.Errorf("no Check case refuses with %q", r)
		}
	}
}

func TestPolicyAdmit(t *testing.T) {
	key, other := newKey(t), newKey(t)
	plat, err := NewVirtual(testCodeID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := plat.Evidence(mustReportData(t, key))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewVerifier(PlatformVirtual)
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Platforms: map[string]PlatformPolicy{
		PlatformVirtual: {Measurements: []string{testCodeID}, AllowInsecure: true},
		"sev-snp":       {Measurements: []string{testCodeID}},
	}}
	now := time.Now()

	v, err := p.Admit(reg, b, key, now)
	if err != nil || v.Measurement.String() != testCodeID {
		t.Fatalf("Admit = %+v, %v", v, err)
	}
	tests := []struct {
		name string
		b    *Bundle
		pub  crypto.PublicKey
		want string
		is   error
	}{
		{"nil bundle", nil, key, ReasonEvidenceInvalid, nil},
		{"malformed evidence", &Bundle{Platform: PlatformVirtual, Evidence: []byte{0xa0}}, key, ReasonEvidenceInvalid, ErrEvidence},
		{"malformed bundle", &Bundle{Platform: PlatformVirtual}, key, ReasonEvidenceInvalid, ErrBundle},
		{"platform without policy", &Bundle{Platform: "tdx", Evidence: []byte{1}}, key, ReasonPlatformNotAccepted, nil},
		{"platform this node cannot verify", &Bundle{Platform: "sev-snp", Evidence: []byte{1}}, key, ReasonPlatformNotAccepted, ErrUnknownPlatform},
		{"other key", b, other, ReasonReportDataMismatch, nil},
	}
	for _, tc := range tests {
		_, err := p.Admit(reg, tc.b, tc.pub, now)
		if got := refusalReason(err); got != tc.want {
			t.Errorf("%s: Admit = %v, want reason %q", tc.name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: Admit = %v, want it to wrap %v", tc.name, err, tc.is)
		}
	}
	// Forged evidence claiming an allowed measurement passes: virtual proves
	// nothing. This test exists so nobody forgets it.
	forged := Virtual{codeID: mustParse(t, testCodeID)}
	fb, _ := forged.Evidence(mustReportData(t, other))
	if _, err := p.Admit(reg, fb, other, now); err != nil {
		t.Fatalf("forged virtual evidence refused (%v): the doc says it is accepted", err)
	}
	// Without AllowInsecure, virtual is refused whatever it claims.
	strict := Policy{Platforms: map[string]PlatformPolicy{PlatformVirtual: {Measurements: []string{testCodeID}}}}
	if _, err := strict.Admit(reg, b, key, now); refusalReason(err) != ReasonInsecureNotAllowed {
		t.Fatalf("strict Admit = %v", err)
	}
}

func mustParse(t *testing.T, s string) Measurement {
	t.Helper()
	m, err := ParseMeasurement(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPolicyValidate(t *testing.T) {
	ok := Policy{Platforms: map[string]PlatformPolicy{"virtual": {Measurements: []string{testCodeID, strings.ToUpper(testCodeID)}}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Policy{Platforms: map[string]PlatformPolicy{"virtual": {Measurements: []string{"", "xyz", testCodeID}}}}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "xyz") || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("Validate = %v", err)
	}
	hw := Policy{Platforms: map[string]PlatformPolicy{"tdx": {Measurements: []string{testCodeID}, MinTCB: "0g", HostData: []string{"ab", "q"}, RTMRs: []string{"", "z1"}}}}
	err = hw.Validate()
	for _, want := range []string{`min_tcb "0g"`, `host_data "q"`, `rtmrs "z1"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to name %s", err, want)
		}
	}
}

func TestNewVerifier(t *testing.T) {
	reg, err := NewVerifier()
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Platforms(); !slices.Equal(got, supportedPlatforms()) || !slices.Contains(got, PlatformVirtual) || !slices.Contains(got, PlatformSEVSNP) {
		t.Fatalf("Platforms = %v, want every supported platform %v", got, supportedPlatforms())
	}
	if _, err := NewVerifier(PlatformVirtual, PlatformVirtual); err != nil {
		t.Fatalf("duplicate names: %v", err)
	}
	_, err = NewVerifier(PlatformVirtual, "sgx")
	var upe *UnknownPlatformError
	if !errors.As(err, &upe) || upe.Platform != "sgx" || !errors.Is(err, ErrUnknownPlatform) || !strings.Contains(err.Error(), `"sgx"`) {
		t.Fatalf("NewVerifier(sgx) = %v", err)
	}
	// A registry for some platforms refuses the others, naming what it has.
	virtualOnly, err := NewVerifier(PlatformVirtual)
	if err != nil {
		t.Fatal(err)
	}
	_, err = virtualOnly.Verify(&Bundle{Platform: PlatformSEVSNP, Evidence: []byte{1}}, time.Now())
	if !errors.As(err, &upe) || upe.Platform != PlatformSEVSNP || !slices.Equal(upe.Supported, []string{PlatformVirtual}) {
		t.Fatalf("Verify(sev-snp) on a virtual-only registry = %v", err)
	}
	if _, err := reg.Verify(nil, time.Now()); !errors.Is(err, ErrBundle) {
		t.Fatalf("Verify(nil) = %v", err)
	}
	if _, err := reg.Verify(&Bundle{Platform: "BAD", Evidence: []byte{1}}, time.Now()); !errors.Is(err, ErrBundle) {
		t.Fatalf("Verify(bad name) = %v", err)
	}
}

// lyingVerifier returns a result for a platform other than the bundle's.
type lyingVerifier struct{}

func (lyingVerifier) Verify(*Bundle, time.Time) (*Verified, error) {
	return &Verified{Platform: "sev-snp", Secure: true}, nil
}

func TestRegistryRefusesMismatchedResult(t *testing.T) {
	reg := &Registry{verifiers: map[string]Verifier{"virtual": lyingVerifier{}}}
	if _, err := reg.Verify(&Bundle{Platform: "virtual", Evidence: []byte{1}}, time.Now()); !errors.Is(err, ErrEvidence) {
		t.Fatalf("Verify = %v, want ErrEvidence", err)
	}
}

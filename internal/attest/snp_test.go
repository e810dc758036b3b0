package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

var (
	// snpT0 is when the fake AMD chains are issued; snpNow is a time at
	// which all their certificates are valid.
	snpT0  = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	snpNow = snpT0.Add(24 * time.Hour)
	// snpTCB is the TCB the fake VCEKs and VLEKs certify.
	snpTCB = kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}
	// snpHWID is the fake VCEKs' hardware id (the reports' CHIP_ID).
	snpHWID = bytes.Repeat([]byte{0xc1}, abi.ChipIDSize)
)

// newSNPChain issues a fake AMD chain (ARK, ASK, ASVK, VCEK, VLEK) for
// productName with go-sev-guest's test builder. keys nil means
// go-sev-guest's fixed test keys.
func newSNPChain(t testing.TB, productName string, keys *sevtest.AmdKeys, tcb kds.TCBParts) *sevtest.AmdSigner {
	t.Helper()
	if keys == nil {
		keys = sevtest.DefaultAmdKeys()
	}
	b := &sevtest.AmdSignerBuilder{
		Keys:             keys,
		ProductName:      productName,
		CSPID:            "coco-test",
		ArkCreationTime:  snpT0,
		AskCreationTime:  snpT0,
		AsvkCreationTime: snpT0,
		VcekCreationTime: snpT0,
		VlekCreationTime: snpT0,
		VcekCustom:       sevtest.CertOverride{Extensions: sevtest.CustomExtensions(tcb, snpHWID, "", productName)},
		VlekCustom:       sevtest.CertOverride{Extensions: sevtest.CustomExtensions(tcb, nil, "coco-test", productName)},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newForeignSNPChain issues a second fake Milan chain with the same names
// but keys of its own: not the roots a test pins.
func newForeignSNPChain(t testing.TB) *sevtest.AmdSigner {
	t.Helper()
	newRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	vcek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSNPChain(t, "Milan-B1", &sevtest.AmdKeys{Ark: newRSA(), Ask: newRSA(), Asvk: newRSA(), Vcek: vcek}, snpTCB)
}

// snpRoots is the trust anchor set of the given fake chains, by product line.
func snpRoots(chains ...*sevtest.AmdSigner) map[string]*trust.AMDRootCerts {
	roots := make(map[string]*trust.AMDRootCerts)
	for _, s := range chains {
		line := strings.TrimPrefix(s.Ark.Subject.CommonName, "ARK-")
		roots[line] = &trust.AMDRootCerts{
			ProductLine:  line,
			ProductCerts: &trust.ProductCerts{Ark: s.Ark, Ask: s.Ask, Asvk: s.Asvk},
		}
	}
	return roots
}

// snpTestReport is an unsigned version 2 report, VCEK-signed, every field
// set to a recognizable value; tests change fields, then sign it.
func snpTestReport(t testing.TB) *spb.Report {
	t.Helper()
	tcb, err := kds.ComposeTCBParts(snpTCB)
	if err != nil {
		t.Fatal(err)
	}
	return &spb.Report{
		Version:         2,
		GuestSvn:        1,
		Policy:          abi.SnpPolicyToBytes(abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, SMT: true}),
		FamilyId:        make([]byte, abi.FamilyIDSize),
		ImageId:         make([]byte, abi.ImageIDSize),
		SignatureAlgo:   abi.SignEcdsaP384Sha384,
		CurrentTcb:      uint64(tcb),
		PlatformInfo:    1,
		SignerInfo:      abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner}),
		ReportData:      bytes.Repeat([]byte{0xd0}, abi.ReportDataSize),
		Measurement:     bytes.Repeat([]byte{0xa1}, abi.MeasurementSize),
		HostData:        bytes.Repeat([]byte{0x4b}, abi.HostDataSize),
		IdKeyDigest:     make([]byte, abi.IDKeyDigestSize),
		AuthorKeyDigest: make([]byte, abi.AuthorKeyDigestSize),
		ReportId:        bytes.Repeat([]byte{0x1d}, abi.ReportIDSize),
		ReportIdMa:      bytes.Repeat([]byte{0xff}, abi.ReportIDMASize),
		ReportedTcb:     uint64(tcb),
		ChipId:          slices.Clone(snpHWID),
		CommittedTcb:    uint64(tcb),
		CurrentBuild:    21,
		CurrentMinor:    55,
		CurrentMajor:    1,
		CommittedBuild:  21,
		CommittedMinor:  55,
		CommittedMajor:  1,
		LaunchTcb:       uint64(tcb),
		Signature:       make([]byte, abi.SignatureSize),
	}
}

// signSNP encodes r and signs it with s's VCEK or VLEK (as r's SIGNER_INFO
// says), as the firmware would.
func signSNP(t testing.TB, s *sevtest.AmdSigner, r *spb.Report) []byte {
	t.Helper()
	raw, err := abi.ReportToAbiBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	rr, ss, err := s.Sign(abi.SignedComponent(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(rr, ss, raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

func snpBundle(report []byte, endorsements ...[]byte) *Bundle {
	return &Bundle{Platform: PlatformSEVSNP, Evidence: report, Endorsements: endorsements}
}

// wantSNPRefusal checks that err is an SNPError of check, matching
// ErrEvidence, whose text contains detail.
func wantSNPRefusal(t *testing.T, res *Verified, err error, check SNPCheck, detail string) {
	t.Helper()
	var se *SNPError
	if !errors.As(err, &se) || se.Check != check || !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), detail) {
		t.Fatalf("Verify = %+v, %v; want a %q refusal saying %q", res, err, check, detail)
	}
	if res != nil {
		t.Fatalf("Verify returned a result with its error: %+v", res)
	}
}

func TestSNPRegistered(t *testing.T) {
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Platforms(); !slices.Equal(got, []string{PlatformSEVSNP}) {
		t.Fatalf("Platforms = %v", got)
	}
	if !slices.Contains(supportedPlatforms(), PlatformSEVSNP) {
		t.Fatalf("supportedPlatforms = %v, want it to include %s", supportedPlatforms(), PlatformSEVSNP)
	}
}

// TestSNPPinnedRoots pins the AMD roots the registered verifier trusts to
// the SHA-256 of AMD's certificates: a go-sev-guest upgrade that changes
// them must be reviewed, not absorbed.
func TestSNPPinnedRoots(t *testing.T) {
	roots, err := amdSNPRoots()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{ // ARK, ASK, ASVK
		"Milan": {
			"69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
			"67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
			"c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
		},
		"Genoa": {
			"4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
			"5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
			"197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
		},
	}
	if len(roots) != len(want) {
		t.Fatalf("roots for %d product lines, want %d", len(roots), len(want))
	}
	for line, fps := range want {
		r := roots[line]
		if r == nil || r.ProductLine != line {
			t.Fatalf("no %s root", line)
		}
		for i, c := range []*x509.Certificate{r.ProductCerts.Ark, r.ProductCerts.Ask, r.ProductCerts.Asvk} {
			if got := sha256.Sum256(c.Raw); hex.EncodeToString(got[:]) != fps[i] {
				t.Errorf("%s %s: SHA-256 %x, want %s", line, c.Subject.CommonName, got, fps[i])
			}
		}
	}
}

func TestSNPVerifyAccepts(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	v := newSNPVerifierWithRoots(snpRoots(s))
	r := snpTestReport(t)
	report := signSNP(t, s, r)

	check := func(t *testing.T, b *Bundle) {
		t.Helper()
		res, err := v.Verify(b, snpNow)
		if err != nil {
			t.Fatal(err)
		}
		want := &Verified{
			Platform:    PlatformSEVSNP,
			Measurement: r.Measurement,
			Secure:      true,
			TCB:         "blSPL=3 teeSPL=0 snpSPL=8 ucodeSPL=115",
			TCBVersion:  []byte{115, 8, 0, 0, 0, 0, 0, 3},
			Debug:       false,
			HostData:    r.HostData,
		}
		copy(want.ReportData[:], r.ReportData)
		if res.Platform != want.Platform || !bytes.Equal(res.Measurement, want.Measurement) ||
			res.ReportData != want.ReportData || res.Secure != want.Secure || res.TCB != want.TCB ||
			!bytes.Equal(res.TCBVersion, want.TCBVersion) || res.Debug != want.Debug ||
			!bytes.Equal(res.HostData, want.HostData) || res.RTMRs != nil {
			t.Fatalf("Verify =\n%+v\nwant\n%+v", res, want)
		}
		// The result does not alias the bundle.
		b.Evidence[0x90] ^= 0xff
		if res.Measurement[0] != r.Measurement[0] {
			t.Fatal("Measurement aliases the evidence")
		}
		b.Evidence[0x90] ^= 0xff
	}
	t.Run("vcek", func(t *testing.T) { check(t, snpBundle(report, s.Vcek.Raw)) })
	t.Run("vcek with the pinned ask and ark", func(t *testing.T) { check(t, snpBundle(report, s.Vcek.Raw, s.Ask.Raw, s.Ark.Raw)) })
	t.Run("vcek with the pinned ask", func(t *testing.T) { check(t, snpBundle(report, s.Vcek.Raw, s.Ask.Raw)) })
	t.Run("version 3 naming its processor", func(t *testing.T) {
		r3 := snpTestReport(t)
		r3.Version = 3
		r3.Cpuid1EaxFms = abi.MaskedCpuid1EaxFromSevProduct(abi.DefaultSevProduct())
		check(t, snpBundle(signSNP(t, s, r3), s.Vcek.Raw))
	})
	t.Run("vlek", func(t *testing.T) {
		rl := snpTestReport(t)
		rl.SignerInfo = abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VlekReportSigner})
		check(t, snpBundle(signSNP(t, s, rl), s.Vlek.Raw, s.Asvk.Raw, s.Ark.Raw))
	})
	t.Run("masked chip id", func(t *testing.T) {
		rm := snpTestReport(t)
		rm.SignerInfo = abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner, MaskChipKey: true})
		rm.ChipId = make([]byte, abi.ChipIDSize)
		check(t, snpBundle(signSNP(t, s, rm), s.Vcek.Raw))
	})
	t.Run("through the registry", func(t *testing.T) {
		reg := &Registry{verifiers: map[string]Verifier{PlatformSEVSNP: v}}
		res, err := reg.Verify(snpBundle(report, s.Vcek.Raw), snpNow)
		if err != nil || res.Platform != PlatformSEVSNP {
			t.Fatalf("Registry.Verify = %+v, %v", res, err)
		}
	})
}

// TestSNPVerifyReportsWhatPolicyJudges: reports a policy should refuse (a
// debuggable guest, a low TCB, foreign report data, another measurement or
// host data) are genuine evidence; the verifier accepts them and reports
// those fields exactly, for Policy to judge.
func TestSNPVerifyReportsWhatPolicyJudges(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	v := newSNPVerifierWithRoots(snpRoots(s))

	t.Run("debug", func(t *testing.T) {
		r := snpTestReport(t)
		r.Policy = abi.SnpPolicyToBytes(abi.SnpPolicy{ABIMajor: 1, SMT: true, Debug: true})
		res, err := v.Verify(snpBundle(signSNP(t, s, r), s.Vcek.Raw), snpNow)
		if err != nil || !res.Debug {
			t.Fatalf("Verify = %+v, %v; want Debug", res, err)
		}
	})
	t.Run("low tcb", func(t *testing.T) {
		low := kds.TCBParts{BlSpl: 1, TeeSpl: 0, SnpSpl: 2, UcodeSpl: 9}
		ls := newSNPChain(t, "Milan-B1", nil, low)
		tcb, err := kds.ComposeTCBParts(low)
		if err != nil {
			t.Fatal(err)
		}
		r := snpTestReport(t)
		r.ReportedTcb = uint64(tcb)
		res, err := newSNPVerifierWithRoots(snpRoots(ls)).Verify(snpBundle(signSNP(t, ls, r), ls.Vcek.Raw), snpNow)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.TCBVersion, []byte{9, 2, 0, 0, 0, 0, 0, 1}) || res.TCB != "blSPL=1 teeSPL=0 snpSPL=2 ucodeSPL=9" {
			t.Fatalf("TCBVersion = %x, TCB = %q", res.TCBVersion, res.TCB)
		}
	})
	t.Run("report data, measurement, host data", func(t *testing.T) {
		r := snpTestReport(t)
		r.ReportData = bytes.Repeat([]byte{0x0e}, abi.ReportDataSize)
		r.Measurement = bytes.Repeat([]byte{0x77}, abi.MeasurementSize)
		r.HostData = make([]byte, abi.HostDataSize)
		res, err := v.Verify(snpBundle(signSNP(t, s, r), s.Vcek.Raw), snpNow)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.ReportData[:], r.ReportData) || !bytes.Equal(res.Measurement, r.Measurement) || !bytes.Equal(res.HostData, r.HostData) {
			t.Fatalf("Verify = %+v", res)
		}
	})
}

// reissueVCEK returns a copy of s whose VCEK is re-issued by s's ASK with
// edit applied to its template.
func reissueVCEK(t *testing.T, s *sevtest.AmdSigner, edit func(*x509.Certificate)) *sevtest.AmdSigner {
	t.Helper()
	// Keep AMD's KDS extensions (1.3.6.1.4.1.3704.*); x509 adds the others.
	exts := slices.DeleteFunc(slices.Clone(s.Vcek.Extensions), func(e pkix.Extension) bool {
		return !strings.HasPrefix(e.Id.String(), "1.3.6.1.4.1.3704.")
	})
	tmpl := &x509.Certificate{
		SerialNumber:       s.Vcek.SerialNumber,
		Subject:            s.Vcek.Subject,
		NotBefore:          s.Vcek.NotBefore,
		NotAfter:           s.Vcek.NotAfter,
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    exts,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.Ask, s.Keys.Vcek.Public(), s.Keys.Ask)
	if err != nil {
		t.Fatal(err)
	}
	out := *s
	if out.Vcek, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestSNPVerifyRefuses(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	genoa := newSNPChain(t, "Genoa-B1", nil, snpTCB)
	foreign := newForeignSNPChain(t)

	v := newSNPVerifierWithRoots(snpRoots(s))
	report := signSNP(t, s, snpTestReport(t))
	sign := func(edit func(*spb.Report)) []byte {
		r := snpTestReport(t)
		edit(r)
		return signSNP(t, s, r)
	}
	encode := func(edit func(*spb.Report)) []byte { // unsigned
		r := snpTestReport(t)
		edit(r)
		raw, err := abi.ReportToAbiBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	notYetValid := reissueVCEK(t, s, func(c *x509.Certificate) { c.NotBefore = snpNow.Add(time.Hour) })
	otherKey := *s
	otherKey.Keys = &sevtest.AmdKeys{Vcek: foreign.Keys.Vcek}

	cases := []struct {
		name   string
		v      *snpVerifier
		b      *Bundle
		now    time.Time
		check  SNPCheck
		detail string
	}{
		{"short report", v, snpBundle(report[:abi.ReportSize-1], s.Vcek.Raw), snpNow, SNPCheckFormat, "1183 bytes"},
		{"long report", v, snpBundle(append(slices.Clone(report), 0), s.Vcek.Raw), snpNow, SNPCheckFormat, "1185 bytes"},
		{"unknown report version", v, snpBundle(encode(func(r *spb.Report) { r.Version = 1 }), s.Vcek.Raw), snpNow, SNPCheckFormat, "version"},
		{"reserved field set", v, snpBundle(func() []byte { b := slices.Clone(report); b[0x4c] = 1; return b }(), s.Vcek.Raw), snpNow, SNPCheckFormat, "mbz"},
		{"unknown signature algorithm", v, snpBundle(encode(func(r *spb.Report) { r.SignatureAlgo = 2 }), s.Vcek.Raw), snpNow, SNPCheckFormat, "signature algorithm 2"},
		{"too many endorsements", v, snpBundle(report, s.Vcek.Raw, s.Ask.Raw, s.Ark.Raw, s.Ark.Raw), snpNow, SNPCheckFormat, "4 endorsements"},
		{"endorsement not a certificate", v, snpBundle(report, []byte("VCEK")), snpNow, SNPCheckFormat, "endorsement 0"},
		{"unsigned report", v, snpBundle(encode(func(r *spb.Report) {
			r.SignerInfo = abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.NoneReportSigner})
		}), s.Vcek.Raw), snpNow, SNPCheckSigner, "not signed by a VCEK or VLEK"},
		{"no vcek", v, snpBundle(report), snpNow, SNPCheckSigner, "no VCEK certificate"},
		{"vlek report with a vcek certificate", v, snpBundle(sign(func(r *spb.Report) {
			r.SignerInfo = abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VlekReportSigner})
		}), s.Vcek.Raw), snpNow, SNPCheckSigner, `signed by a VLEK but endorsement 0 is a certificate for "SEV-VCEK"`},
		{"modified report", v, snpBundle(func() []byte { b := slices.Clone(report); b[0x90] ^= 1; return b }(), s.Vcek.Raw), snpNow, SNPCheckSignature, "report is not signed by the VCEK"},
		{"signed by a key not in the chain", v, snpBundle(signSNP(t, &otherKey, snpTestReport(t)), s.Vcek.Raw), snpNow, SNPCheckSignature, "report is not signed by the VCEK"},
		{"foreign chain", v, snpBundle(signSNP(t, foreign, snpTestReport(t)), foreign.Vcek.Raw), snpNow, SNPCheckChain, "not certified by AMD's pinned Milan roots"},
		{"foreign ask in the bundle", v, snpBundle(report, s.Vcek.Raw, foreign.Ask.Raw), snpNow, SNPCheckChain, "endorsement 1 is not AMD's pinned Milan ASK"},
		{"foreign ark in the bundle", v, snpBundle(report, s.Vcek.Raw, s.Ask.Raw, foreign.Ark.Raw), snpNow, SNPCheckChain, "endorsement 2 is not AMD's pinned Milan ARK"},
		{"expired vcek", v, snpBundle(report, s.Vcek.Raw), s.Vcek.NotAfter.Add(time.Second), SNPCheckExpired, "VCEK certificate expired at"},
		{"vcek not yet valid", v, snpBundle(signSNP(t, notYetValid, snpTestReport(t)), notYetValid.Vcek.Raw), snpNow, SNPCheckNotYetValid, "VCEK certificate is not valid before"},
		{"ask not yet valid", v, snpBundle(report, s.Vcek.Raw), snpT0.Add(-time.Hour), SNPCheckNotYetValid, "ASK certificate is not valid before"},
		{"report from another product than its vcek", newSNPVerifierWithRoots(snpRoots(s, genoa)), snpBundle(sign(func(r *spb.Report) {
			r.Version = 3
			r.Cpuid1EaxFms = abi.FmsToCpuid1Eax(0x19, 0x11, 1) // Genoa B1
		}), s.Vcek.Raw), snpNow, SNPCheckProduct, `report is from a Genoa processor but its VCEK was issued by "SEV-Milan"`},
		{"product without pinned roots", v, snpBundle(sign(func(r *spb.Report) {
			r.Version = 3
			r.Cpuid1EaxFms = abi.FmsToCpuid1Eax(0x1a, 0x02, 0) // Turin B0
		}), s.Vcek.Raw), snpNow, SNPCheckProduct, "no pinned AMD roots for Turin processors (this build verifies [Milan])"},
		{"unknown processor", v, snpBundle(sign(func(r *spb.Report) {
			r.Version = 3
			r.Cpuid1EaxFms = abi.FmsToCpuid1Eax(0x17, 0x31, 0) // Rome, no SNP
		}), s.Vcek.Raw), snpNow, SNPCheckProduct, "unknown processor"},
		{"reported tcb not the vcek's", v, snpBundle(sign(func(r *spb.Report) {
			higher := snpTCB
			higher.SnpSpl++
			tcb, _ := kds.ComposeTCBParts(higher)
			r.ReportedTcb = uint64(tcb)
		}), s.Vcek.Raw), snpNow, SNPCheckTCB, "REPORTED_TCB (blSPL=3 teeSPL=0 snpSPL=9 ucodeSPL=115) is not the TCB its VCEK certifies (blSPL=3 teeSPL=0 snpSPL=8 ucodeSPL=115)"},
		{"chip id not the vcek's", v, snpBundle(sign(func(r *spb.Report) {
			r.ChipId = bytes.Repeat([]byte{0xc2}, abi.ChipIDSize)
		}), s.Vcek.Raw), snpNow, SNPCheckChipID, "CHIP_ID c2c2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := c.v.Verify(c.b, c.now)
			wantSNPRefusal(t, res, err, c.check, c.detail)
		})
	}

	t.Run("bundle of another platform", func(t *testing.T) {
		_, err := v.Verify(&Bundle{Platform: PlatformVirtual, Evidence: report}, snpNow)
		var se *SNPError
		if !errors.Is(err, ErrEvidence) || errors.As(err, &se) {
			t.Fatalf("Verify(virtual bundle) = %v", err)
		}
		if _, err := v.Verify(nil, snpNow); !errors.Is(err, ErrBundle) {
			t.Fatalf("Verify(nil) = %v", err)
		}
	})
}

// TestSNPRegisteredRefusesFakeChain: the registered verifier trusts AMD's
// roots only, not go-sev-guest's test chain.
func TestSNPRegisteredRefusesFakeChain(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		t.Fatal(err)
	}
	res, err := reg.Verify(snpBundle(signSNP(t, s, snpTestReport(t)), s.Vcek.Raw), snpNow)
	wantSNPRefusal(t, res, err, SNPCheckChain, "not certified by AMD's pinned Milan roots")
}

// snpRealNow is when the real Milan VCEK in testdata/snp (2022-09-24 to
// 2029-09-24) and AMD's Milan ASK and ARK (2020-10-22 to 2045-10-22) are
// all valid.
var snpRealNow = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func readSNPTestdata(t testing.TB) (report, vcek []byte) {
	t.Helper()
	report, err := os.ReadFile("testdata/snp/milan-report.bin")
	if err != nil {
		t.Fatal(err)
	}
	vcek, err = os.ReadFile("testdata/snp/milan-vcek.der")
	if err != nil {
		t.Fatal(err)
	}
	return report, vcek
}

func TestSNPVerifyRealMilanReport(t *testing.T) {
	report, vcek := readSNPTestdata(t)
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		t.Fatal(err)
	}
	res, err := reg.Verify(snpBundle(report, vcek), snpRealNow)
	if err != nil {
		t.Fatal(err)
	}
	var rd ReportData
	copy(rd[:], []byte{1, 2, 3, 4, 5})
	if res.Platform != PlatformSEVSNP || !res.Secure || res.ReportData != rd ||
		res.Measurement.String() != "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01" ||
		res.TCB != "blSPL=2 teeSPL=0 snpSPL=5 ucodeSPL=68" || hex.EncodeToString(res.TCBVersion) != "4405000000000002" ||
		!res.Debug || !bytes.Equal(res.HostData, make([]byte, 32)) || res.RTMRs != nil {
		t.Fatalf("Verify = %+v", res)
	}

	// With AMD's ASK and ARK in the bundle too.
	ask, ark, err := kds.ParseProductCertChain(trust.AskArkMilanVcekBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Verify(snpBundle(report, vcek, ask, ark), snpRealNow); err != nil {
		t.Fatalf("with ASK and ARK: %v", err)
	}

	vc, err := x509.ParseCertificate(vcek)
	if err != nil {
		t.Fatal(err)
	}
	res, err = reg.Verify(snpBundle(report, vcek), vc.NotAfter.Add(time.Second))
	wantSNPRefusal(t, res, err, SNPCheckExpired, "VCEK certificate expired at 2029-09-24T00:55:28Z")
	res, err = reg.Verify(snpBundle(report, vcek), vc.NotBefore.Add(-time.Second))
	wantSNPRefusal(t, res, err, SNPCheckNotYetValid, "VCEK certificate is not valid before 2022-09-24T00:55:28Z")

	// A report cannot be made to claim another processor: the version and
	// CPUID fields are signed.
	r3 := slices.Clone(report)
	r3[0] = 3
	r3[0x188], r3[0x189], r3[0x18a] = 0x19, 0x11, 0x01 // Genoa
	res, err = reg.Verify(snpBundle(r3, vcek), snpRealNow)
	wantSNPRefusal(t, res, err, SNPCheckSignature, "not signed")
}

// TestSNPVerifyRealReportEveryByteCorrupted: flipping the low bit of any
// single byte of the real report, in the signed part (0x000-0x29f) or the
// signature, gets it refused, by the format or the signature check.
func TestSNPVerifyRealReportEveryByteCorrupted(t *testing.T) {
	report, vcek := readSNPTestdata(t)
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	counts := map[SNPCheck]int{}
	corrupted := slices.Clone(report)
	for i := range report {
		corrupted[i] ^= 1
		res, err := reg.Verify(snpBundle(corrupted, vcek), snpRealNow)
		corrupted[i] ^= 1
		var se *SNPError
		if !errors.As(err, &se) || (se.Check != SNPCheckFormat && se.Check != SNPCheckSignature) {
			t.Fatalf("byte %#x flipped: Verify = %+v, %v; want a format or signature refusal", i, res, err)
		}
		counts[se.Check]++
	}
	t.Logf("%d corruptions refused in %v: %v", len(report), time.Since(start), counts)
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingGetter counts what go-sev-guest tries to fetch, and fetches
// nothing.
type countingGetter struct {
	calls atomic.Int32
	last  atomic.Value // string: the last URL
}

func (g *countingGetter) Get(url string) ([]byte, error) {
	g.calls.Add(1)
	g.last.Store(url)
	return nil, errors.New("no network in tests")
}

// TestSNPVerifyIsOffline: verification never fetches (no VCEK, ASK, ARK or
// CRL from AMD's KDS), even when the bundle lacks what go-sev-guest would
// otherwise download. Not parallel: it replaces http.DefaultTransport.
func TestSNPVerifyIsOffline(t *testing.T) {
	var requests atomic.Int32
	saved := http.DefaultTransport
	http.DefaultTransport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		t.Errorf("HTTP request to %s", r.URL)
		return nil, errors.New("no network in tests")
	})
	t.Cleanup(func() { http.DefaultTransport = saved })

	report, vcek := readSNPTestdata(t)
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		t.Fatal(err)
	}
	getter := &countingGetter{}
	reg.verifiers[PlatformSEVSNP].(*snpVerifier).getter = getter

	if _, err := reg.Verify(snpBundle(report, vcek), snpRealNow); err != nil {
		t.Fatal(err)
	}
	corrupted := slices.Clone(report)
	corrupted[0x90] ^= 1
	for _, b := range []*Bundle{snpBundle(report), snpBundle(corrupted, vcek)} {
		if _, err := reg.Verify(b, snpRealNow); !errors.Is(err, ErrEvidence) {
			t.Fatalf("Verify = %v, want a refusal", err)
		}
	}
	if requests.Load() != 0 || getter.calls.Load() != 0 {
		t.Fatalf("%d HTTP requests, %d fetches (last %v)", requests.Load(), getter.calls.Load(), getter.last.Load())
	}

	// The test can see a fetch: go-sev-guest with its default options does
	// fetch the VCEK a bundle lacks.
	proto, err := abi.ReportToProto(report)
	if err != nil {
		t.Fatal(err)
	}
	lib := &countingGetter{}
	_ = verify.SnpAttestation(&spb.Attestation{Report: proto}, &verify.Options{Getter: lib, Now: snpRealNow, Product: abi.DefaultSevProduct()})
	if lib.calls.Load() == 0 {
		t.Fatal("go-sev-guest did not try to fetch: this test would not notice fetches")
	}
}

func FuzzSNPVerify(f *testing.F) {
	report, vcek := readSNPTestdata(f)
	f.Add(report, vcek)
	f.Add(report[:0x2a0], vcek)
	f.Add(bytes.Repeat([]byte{0xff}, abi.ReportSize), vcek[:100])
	reg, err := NewVerifier(PlatformSEVSNP)
	if err != nil {
		f.Fatal(err)
	}
	want, err := reg.Verify(snpBundle(report, vcek), snpRealNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, evidence, ek []byte) {
		if len(evidence) == 0 || len(ek) == 0 { // not a valid bundle
			return
		}
		res, err := reg.Verify(snpBundle(evidence, ek), snpRealNow)
		if err != nil {
			if !errors.Is(err, ErrEvidence) {
				t.Fatalf("refusal %v does not wrap ErrEvidence", err)
			}
			return
		}
		// Nothing but AMD-signed reports verifies: the fuzzer cannot forge
		// one, so what verifies says what the real report says.
		if !bytes.Equal(res.Measurement, want.Measurement) || res.ReportData != want.ReportData {
			t.Fatalf("Verify accepted a report that is not the real one: %+v", res)
		}
	})
}

func TestNewSNPWithoutDevice(t *testing.T) {
	if _, err := os.Stat("/dev/sev-guest"); err == nil {
		t.Skip("this machine has /dev/sev-guest")
	}
	p, err := NewSNP()
	t.Log(err)
	if p != nil || !errors.Is(err, ErrSNPDevice) || !strings.Contains(err.Error(), "/dev/sev-guest") {
		t.Fatalf("NewSNP = %v, %v; want an ErrSNPDevice naming /dev/sev-guest", p, err)
	}
}

// fakeSNP is an SNP platform backed by go-sev-guest's fake firmware, which
// answers report requests for the report data in reports (signing them
// with s) and key requests for the keys in keys.
func fakeSNP(t *testing.T, s *sevtest.AmdSigner, reports map[ReportData]*spb.Report, keys map[uint64][]byte) (*SNP, *sevtest.Device) {
	t.Helper()
	certs, err := s.CertTableBytes()
	if err != nil {
		t.Fatal(err)
	}
	dev := &sevtest.Device{
		ReportDataRsp: map[string]any{},
		Keys:          map[string][]byte{},
		Certs:         certs,
		Signer:        s,
		SevProduct:    abi.DefaultSevProduct(),
	}
	for rd, r := range reports {
		raw, err := abi.ReportToAbiBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		var resp sevtest.GetReportResponse
		copy(resp.Resp.Data[:], raw)
		dev.ReportDataRsp[hex.EncodeToString(rd[:])] = &resp
	}
	fields := client.GuestFieldSelect{Measurement: true, GuestPolicy: true, TCBVersion: true}.ABI()
	for tcb, key := range keys {
		dev.Keys[sevtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{GuestFieldSelect: fields, TCBVersion: tcb})] = key
	}
	open := func() (client.Device, error) {
		if err := dev.Open(""); err != nil {
			return nil, err
		}
		return dev, nil
	}
	return &SNP{quotes: &sevtest.QuoteProvider{Device: dev}, open: open}, dev
}

func TestSNPEvidenceFromFakeFirmware(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	v := newSNPVerifierWithRoots(snpRoots(s))
	rd := ReportData{1, 2, 3}
	r := snpTestReport(t)
	r.ReportData = rd[:]
	lying := ReportData{9}
	p, dev := fakeSNP(t, s, map[ReportData]*spb.Report{rd: r, lying: r}, nil)
	if p.Name() != PlatformSEVSNP || !p.Secure() {
		t.Fatalf("Name, Secure = %s, %v", p.Name(), p.Secure())
	}

	b, err := p.Evidence(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Evidence) != abi.ReportSize || len(b.Endorsements) != 1 || !bytes.Equal(b.Endorsements[0], s.Vcek.Raw) {
		t.Fatalf("Evidence = %d bytes, %d endorsements", len(b.Evidence), len(b.Endorsements))
	}
	wire, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := UnmarshalBundle(wire)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(b2, snpNow)
	if err != nil || res.ReportData != rd {
		t.Fatalf("Verify(Evidence) = %+v, %v", res, err)
	}

	if _, err := p.Evidence(ReportData{7}); !errors.Is(err, ErrSNPDevice) {
		t.Fatalf("Evidence(unanswered) = %v, want ErrSNPDevice", err)
	}
	if _, err := p.Evidence(lying); !errors.Is(err, ErrSNPDevice) || !strings.Contains(err.Error(), "does not bind") {
		t.Fatalf("Evidence(lying firmware) = %v", err)
	}
	dev.Certs = nil
	if _, err := p.Evidence(rd); !errors.Is(err, ErrSNPDevice) || !strings.Contains(err.Error(), "no VCEK certificate") {
		t.Fatalf("Evidence(no certificates from the host) = %v", err)
	}
}

func TestSNPSealWithFakeFirmware(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	r := snpTestReport(t)
	committed := r.CommittedTcb
	keys := map[uint64][]byte{committed: bytes.Repeat([]byte{0x5e}, 32)}
	p, _ := fakeSNP(t, s, map[ReportData]*spb.Report{{}: r}, keys)

	secret := []byte("ledger secret")
	blob, err := p.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret) {
		t.Fatal("sealed blob contains the plaintext")
	}
	got, err := p.Unseal(blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	if empty, err := p.Seal(nil); err != nil {
		t.Fatal(err)
	} else if got, err := p.Unseal(empty); err != nil || len(got) != 0 {
		t.Fatalf("Unseal(Seal(nil)) = %q, %v", got, err)
	}

	virtual, err := Virtual{}.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(blob)
	tampered[len(tampered)-1] ^= 1
	for name, b := range map[string][]byte{
		"virtual blob": virtual,
		"tampered":     tampered,
		"truncated":    blob[:snpSealMinSize-1],
	} {
		if _, err := p.Unseal(b); !errors.Is(err, ErrSealedBlob) {
			t.Errorf("Unseal(%s) = %v, want ErrSealedBlob", name, err)
		}
	}

	// Another chip (or launch) derives another key.
	other, _ := fakeSNP(t, s, nil, map[uint64][]byte{committed: bytes.Repeat([]byte{0x5f}, 32)})
	if _, err := other.Unseal(blob); !errors.Is(err, ErrSealedBlob) {
		t.Errorf("Unseal on another chip = %v, want ErrSealedBlob", err)
	}
	// A blob claiming a TCB the firmware will not derive at (above
	// COMMITTED_TCB, as after a firmware rollback) is refused by it.
	rolled := slices.Clone(blob)
	rolled[len(snpSealMagic)+7]++
	if _, err := p.Unseal(rolled); !errors.Is(err, ErrSNPDevice) {
		t.Errorf("Unseal at an underivable TCB = %v, want ErrSNPDevice", err)
	}
}

// TestSNPPolicyAdmit is the whole join decision over SEV-SNP reports signed
// with go-sev-guest's fake AMD chain: a report with everything in order is
// admitted; one with another measurement, the debug policy bit, a TCB below
// the minimum, report data for another key, host data the policy does not
// name, or a VCEK that is expired or of a foreign chain is refused with
// the reason for it.
func TestSNPPolicyAdmit(t *testing.T) {
	s := newSNPChain(t, "Milan-B1", nil, snpTCB)
	foreign := newForeignSNPChain(t)
	ver := newSNPVerifierWithRoots(snpRoots(s))
	key, other := newKey(t), newKey(t)
	rd := mustReportData(t, key)
	good := func() *spb.Report {
		r := snpTestReport(t)
		r.ReportData = slices.Clone(rd[:])
		return r
	}
	measurement := hex.EncodeToString(good().Measurement)
	tcb, err := kds.ComposeTCBParts(snpTCB)
	if err != nil {
		t.Fatal(err)
	}
	var min [8]byte
	binary.BigEndian.PutUint64(min[:], uint64(tcb))
	policy := Policy{Platforms: map[string]PlatformPolicy{PlatformSEVSNP: {
		Measurements: []string{measurement}, MinTCB: hex.EncodeToString(min[:]), HostData: []string{hex.EncodeToString(good().HostData)},
	}}}

	lowParts := kds.TCBParts{BlSpl: snpTCB.BlSpl, TeeSpl: snpTCB.TeeSpl, SnpSpl: snpTCB.SnpSpl - 1, UcodeSpl: snpTCB.UcodeSpl}
	low := newSNPChain(t, "Milan-B1", nil, lowParts)
	lowTCB, err := kds.ComposeTCBParts(lowParts)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		signer *sevtest.AmdSigner
		report func(r *spb.Report)
		ver    Verifier
		pub    crypto.PublicKey
		now    time.Time
		want   string
	}{
		{"everything in order", s, nil, ver, key, snpNow, ""},
		{"another measurement", s, func(r *spb.Report) { r.Measurement = bytes.Repeat([]byte{0x99}, abi.MeasurementSize) }, ver, key, snpNow, ReasonMeasurementNotAllowed},
		{"debug policy", s, func(r *spb.Report) {
			r.Policy = abi.SnpPolicyToBytes(abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, SMT: true, Debug: true})
		}, ver, key, snpNow, ReasonDebugNotAllowed},
		{"TCB below the minimum", low, func(r *spb.Report) { r.ReportedTcb = uint64(lowTCB) }, newSNPVerifierWithRoots(snpRoots(low)), key, snpNow, ReasonTCBTooLow},
		{"report data of another key", s, nil, ver, other, snpNow, ReasonReportDataMismatch},
		{"host data not named", s, func(r *spb.Report) { r.HostData = make([]byte, abi.HostDataSize) }, ver, key, snpNow, ReasonHostDataNotAllowed},
		{"VCEK expired", s, nil, ver, key, s.Vcek.NotAfter.Add(time.Hour), ReasonEvidenceInvalid},
		{"foreign chain", foreign, nil, ver, key, snpNow, ReasonEvidenceInvalid},
	}
	for _, c := range cases {
		r := good()
		if c.report != nil {
			c.report(r)
		}
		b := snpBundle(signSNP(t, c.signer, r), c.signer.Vcek.Raw)
		v, err := policy.Admit(c.ver, b, c.pub, c.now)
		if got := refusalReason(err); got != c.want {
			t.Errorf("%s: Admit = %+v, %v; want reason %q", c.name, v, err, c.want)
		}
	}
}

package attest

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
)

// Two kinds of TDX test data:
//
//   - real: a production quote and Intel's collateral from go-tdx-guest's
//     test data (testdata/tdx/README.txt). It is verified by the registered
//     verifier, against the pinned Intel root, at tdxRealTime. It cannot
//     fully verify: its TCB info has no TCB level the quote's platform
//     meets, and that is the last check. Every earlier check passes, which
//     the tests rely on.
//   - synthetic: the same quote header and TD quote body, re-signed under a
//     test PKI that copies Intel's names (and the real PCK certificate's
//     SGX extension), with collateral made to match. It exercises what the
//     real data cannot: full success, revocation, other FMSPCs and TCB
//     statuses. Its verifier trusts only the test root.

// tdxRealTime is when all the real collateral was valid; it is the time
// go-tdx-guest's own verify tests use.
var tdxRealTime = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

// tdxSynthTime is when the synthetic collateral is valid.
var tdxSynthTime = time.Date(2025, time.January, 15, 0, 0, 0, 0, time.UTC)

// Offsets in a TDX quote v4 (Intel TDX DCAP Quoting Library API),
// written out here independently of tdx.go and go-tdx-guest so that the
// tests read the quote themselves.
const (
	qBody         = 48             // after the 48-byte header
	qTeeTcbSvn    = qBody + 0      // 16 bytes
	qMrSignerSeam = qBody + 64     // 48
	qTdAttributes = qBody + 120    // 8
	qMrTd         = qBody + 136    // 48
	qMrConfigID   = qBody + 184    // 48
	qRtmrs        = qBody + 328    // 4 × 48
	qReportData   = qBody + 520    // 64
	qSignedEnd    = qBody + 584    // header and body: what the attestation key signs
	qSigData      = qSignedEnd + 4 // after the uint32 signature data size
	qCertData     = qSigData + 64 + 64 + 2 + 4
	qQEReportSize = 384
)

func readTDX(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tdx", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realTDXQuote is the production quote without the bytes upstream appended
// after its signature data (README.txt).
func realTDXQuote(t testing.TB) []byte {
	raw := readTDX(t, "tdx_prod_quote_SPR_E4.dat")
	return raw[:qSigData+int(binary.LittleEndian.Uint32(raw[qSignedEnd:]))]
}

func realTDXCollateral(t testing.TB) TDXCollateral {
	return TDXCollateral{
		TCBInfo:         readTDX(t, "sample_tcbInfo_response"),
		QEIdentity:      readTDX(t, "sample_qeIdentity_response"),
		PCKCRL:          readTDX(t, "pckcrl"),
		RootCACRL:       readTDX(t, "rootcrl.der"),
		TCBSigningChain: readTDX(t, "tcb_signing_chain.pem"),
	}
}

func realTDXBundle(t testing.TB) *Bundle {
	t.Helper()
	b, err := NewTDXBundle(realTDXQuote(t), realTDXCollateral(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func registeredTDXVerifier(t testing.TB) Verifier {
	t.Helper()
	r, err := NewVerifier(PlatformTDX)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// errNoTCBLevel is how go-tdx-guest refuses the real quote: the last check.
const errNoTCBLevel = "no matching TCB level found"

// ---- synthetic data -------------------------------------------------------

// tdxTestPKI mimics Intel's: a root, a PCK platform CA, a PCK certificate
// carrying the real PCK certificate's SGX extension (so FMSPC, PCE ID and
// CPUSVN are the real platform's), and a TCB signing certificate.
type tdxTestPKI struct {
	rootKey, caKey, pckKey, tcbKey *ecdsa.PrivateKey
	root, ca, pck, tcb             *x509.Certificate
	roots                          *x509.CertPool
	pckExt                         *pcs.PckExtensions
}

func intelName(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation"},
		Locality: []string{"Santa Clara"}, Province: []string{"CA"}, Country: []string{"US"}}
}

var oidSGXExtension = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

// testTDXPKI is built once per test binary; it is immutable.
var testTDXPKI = sync.OnceValues(func() (*tdxTestPKI, error) {
	raw, err := os.ReadFile(filepath.Join("testdata", "tdx", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		return nil, err
	}
	realPCK, err := tdxQuotePCK(raw)
	if err != nil {
		return nil, err
	}
	var sgxExt pkix.Extension
	for _, e := range realPCK.Extensions {
		if e.Id.Equal(oidSGXExtension) {
			sgxExt = e
		}
	}
	p := &tdxTestPKI{}
	for _, k := range []**ecdsa.PrivateKey{&p.rootKey, &p.caKey, &p.pckKey, &p.tcbKey} {
		if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	from, to := tdxSynthTime.AddDate(-1, 0, 0), tdxSynthTime.AddDate(5, 0, 0)
	mk := func(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
		tmpl.NotBefore, tmpl.NotAfter = from, to
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	if p.root, err = mk(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: intelName("Intel SGX Root CA"),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		CRLDistributionPoints: []string{"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"},
	}, nil, p.rootKey, p.rootKey); err != nil {
		return nil, err
	}
	if p.ca, err = mk(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: intelName("Intel SGX PCK Platform CA"),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root, p.caKey, p.rootKey); err != nil {
		return nil, err
	}
	// go-tdx-guest wants a PCK certificate with Intel's six extensions.
	if p.pck, err = mk(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: intelName("Intel SGX PCK Certificate"),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, SubjectKeyId: []byte{3},
		CRLDistributionPoints: []string{pcs.PckCrlURL("platform")}, ExtraExtensions: []pkix.Extension{sgxExt},
	}, p.ca, p.pckKey, p.caKey); err != nil {
		return nil, err
	}
	if p.tcb, err = mk(&x509.Certificate{SerialNumber: big.NewInt(4), Subject: intelName("Intel SGX TCB Signing"),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, p.root, p.tcbKey, p.rootKey); err != nil {
		return nil, err
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	if p.pckExt, err = pcs.PckCertificateExtensions(p.pck); err != nil {
		return nil, err
	}
	return p, nil
})

func testPKI(t testing.TB) *tdxTestPKI {
	t.Helper()
	p, err := testTDXPKI()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tdxQuotePCK returns the PCK certificate of a raw quote.
func tdxQuotePCK(raw []byte) (*x509.Certificate, error) {
	cert := raw[qCertData:]
	auth := int(binary.LittleEndian.Uint16(cert[qQEReportSize+64:]))
	chain := cert[qQEReportSize+64+2+auth+6:]
	blk, _ := pem.Decode(chain)
	if blk == nil {
		return nil, errors.New("no PEM in the quote's PCK chain")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// tdxSynth varies the synthetic quote and collateral; the zero value
// verifies.
type tdxSynth struct {
	body      func(body []byte) // edits the TD quote body before it is signed
	fmspc     string            // of the TCB info; "" is the PCK's
	tcbStatus string            // of the TCB level the quote meets; "" is UpToDate
	revokePCK bool              // the PCK CRL lists the PCK certificate
	revokeCA  bool              // the root CA CRL lists the PCK platform CA
}

// rawSig is an ECDSA P-256 signature over SHA-256(msg) in the quote's and
// PCS's form: r and s, 32 bytes each, big-endian.
func rawSig(t testing.TB, key *ecdsa.PrivateKey, msg []byte) []byte {
	t.Helper()
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func le16(n int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(n)) }
func le32(n int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(n)) }

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// quote returns the real quote's header and (edited) body signed by a fresh
// attestation key, vouched for by the real QE report re-signed by the test
// PCK key, with the test PCK chain.
func (p *tdxTestPKI) quote(t testing.TB, s tdxSynth) []byte {
	t.Helper()
	real := realTDXQuote(t)
	signed := slices.Clone(real[:qSignedEnd])
	if s.body != nil {
		s.body(signed[qBody:])
	}
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	akPub, err := ak.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	akRaw := akPub[1:] // X ‖ Y, without the uncompressed-point prefix

	cert := real[qCertData:]
	qeReport := slices.Clone(cert[:qQEReportSize])
	authLen := int(binary.LittleEndian.Uint16(cert[qQEReportSize+64:]))
	auth := cert[qQEReportSize+64+2 : qQEReportSize+64+2+authLen]
	// The QE binds the attestation key: REPORTDATA = SHA-256(key ‖ auth) ‖ 0³².
	h := sha256.Sum256(append(slices.Clone(akRaw), auth...))
	copy(qeReport[320:], h[:])
	clear(qeReport[352:])

	chain := slices.Concat(pemCert(p.pck), pemCert(p.ca), pemCert(p.root))
	certData := slices.Concat(qeReport, rawSig(t, p.pckKey, qeReport), le16(authLen), auth, le16(5), le32(len(chain)), chain)
	sigData := slices.Concat(rawSig(t, ak, signed), akRaw, le16(6), le32(len(certData)), certData)
	return slices.Concat(signed, le32(len(sigData)), sigData)
}

// pcsJSON is a PCS collateral response: {"<name>": body, "signature": hex},
// signed by the test TCB signing key.
func (p *tdxTestPKI) pcsJSON(t testing.TB, name string, v any) []byte {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%x"}`, name, body, rawSig(t, p.tcbKey, body))
}

func svnComponents(svns []byte) []map[string]any {
	out := make([]map[string]any, len(svns))
	for i, s := range svns {
		out[i] = map[string]any{"svn": s}
	}
	return out
}

func (p *tdxTestPKI) crl(t testing.TB, issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked *x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: tdxSynthTime.AddDate(0, 0, -1), NextUpdate: tdxSynthTime.AddDate(0, 0, 30)}
	if revoked != nil {
		tmpl.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: revoked.SerialNumber, RevocationTime: tdxSynthTime.AddDate(0, 0, -1)}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// collateral is PCS's answer for the synthetic quote: one TCB level, which
// the quote's platform exactly meets, and the real QE identity's values.
func (p *tdxTestPKI) collateral(t testing.TB, s tdxSynth) TDXCollateral {
	t.Helper()
	fmspc, status := cmp.Or(s.fmspc, p.pckExt.FMSPC), cmp.Or(s.tcbStatus, "UpToDate")
	issue, next := tdxSynthTime.AddDate(0, 0, -1).Format(time.RFC3339), tdxSynthTime.AddDate(0, 0, 30).Format(time.RFC3339)
	real := realTDXQuote(t)
	tcbInfo := p.pcsJSON(t, "tcbInfo", map[string]any{
		"id": "TDX", "version": 3, "issueDate": issue, "nextUpdate": next,
		"fmspc": fmspc, "pceId": p.pckExt.PCEID, "tcbType": 0, "tcbEvaluationDataNumber": 17,
		"tdxModule": map[string]any{
			"mrsigner":       hex.EncodeToString(real[qMrSignerSeam : qMrSignerSeam+48]),
			"attributes":     "0000000000000000",
			"attributesMask": "FFFFFFFFFFFFFFFF",
		},
		"tcbLevels": []any{map[string]any{
			"tcb": map[string]any{
				"sgxtcbcomponents": svnComponents(p.pckExt.TCB.CPUSvnComponents),
				"pcesvn":           p.pckExt.TCB.PCESvn,
				"tdxtcbcomponents": svnComponents(real[qTeeTcbSvn : qTeeTcbSvn+16]),
			},
			"tcbDate": issue, "tcbStatus": status,
		}},
	})
	qeIdentity := p.pcsJSON(t, "enclaveIdentity", map[string]any{
		"id": "TD_QE", "version": 2, "issueDate": issue, "nextUpdate": next, "tcbEvaluationDataNumber": 17,
		"miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner":  "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5",
		"isvprodid": 2,
		"tcbLevels": []any{map[string]any{"tcb": map[string]any{"isvsvn": 4}, "tcbDate": issue, "tcbStatus": "UpToDate"}},
	})
	var revokedPCK, revokedCA *x509.Certificate
	if s.revokePCK {
		revokedPCK = p.pck
	}
	if s.revokeCA {
		revokedCA = p.ca
	}
	return TDXCollateral{
		TCBInfo:         tcbInfo,
		QEIdentity:      qeIdentity,
		PCKCRL:          p.crl(t, p.ca, p.caKey, revokedPCK),
		RootCACRL:       p.crl(t, p.root, p.rootKey, revokedCA),
		TCBSigningChain: slices.Concat(pemCert(p.tcb), pemCert(p.root)),
	}
}

func (p *tdxTestPKI) bundle(t testing.TB, s tdxSynth) *Bundle {
	t.Helper()
	b, err := NewTDXBundle(p.quote(t, s), p.collateral(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *tdxTestPKI) verifier() TDXVerifier { return TDXVerifier{roots: p.roots} }

// ---- tests ----------------------------------------------------------------

func TestTDXRegistered(t *testing.T) {
	r, err := NewVerifier()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Platforms(), PlatformTDX) {
		t.Fatalf("NewVerifier() verifies %v, want tdx among them", r.Platforms())
	}
}

// The pinned root is the root of the production quote's PCK chain.
func TestTDXPinnedRootIsIntels(t *testing.T) {
	blk, _ := pem.Decode([]byte(intelSGXRootCAPEM))
	pinned, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(pinned.Raw)); got != "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3" {
		t.Errorf("pinned root fingerprint %s", got)
	}
	raw := realTDXQuote(t)
	chain := raw[bytes.Index(raw, []byte("-----BEGIN CERTIFICATE-----")):]
	var last *pem.Block
	for rest := chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		last = b
	}
	if !bytes.Equal(last.Bytes, pinned.Raw) {
		t.Error("the production quote's chain ends in another root than the pinned one")
	}
}

// The real quote, its real collateral, the registered verifier (pinned
// Intel root), at a time all of it was valid: refused only at the TCB level,
// the last check, so the PCK chain, both CRLs, the TCB info and QE identity
// signatures and expiry, the quote signature, the QE report signature and
// its binding of the attestation key all passed.
func TestTDXRealQuoteFailsOnlyAtTCBLevel(t *testing.T) {
	_, err := registeredTDXVerifier(t).Verify(realTDXBundle(t), tdxRealTime)
	if !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), errNoTCBLevel) {
		t.Fatalf("Verify = %v, want ErrEvidence: …%s", err, errNoTCBLevel)
	}
	t.Log(err)
}

// tdxVerified, the mapping Verify applies once go-tdx-guest has accepted a
// quote, on the production quote (which is not accepted: its TCB level is
// too low), against values read from its bytes here and, for the identity
// fields, written down from an independent reading.
func TestTDXVerifiedFieldsOfRealQuote(t *testing.T) {
	raw := realTDXQuote(t)
	q, err := parseTDXQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	col, err := parseTDXEndorsements(realTDXBundle(t).Endorsements)
	if err != nil {
		t.Fatal(err)
	}
	v := tdxVerified(q, col)
	checkTDXVerified(t, v, raw)
	if want := "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"; v.Measurement.String() != want {
		t.Errorf("MRTD %s, want %s", v.Measurement, want)
	}
	if want := "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"; v.ReportData.String() != want {
		t.Errorf("REPORTDATA %s, want %s", v.ReportData, want)
	}
	if v.Debug {
		t.Error("Debug set; the production TD's attributes are 0000004000000000")
	}
}

// checkTDXVerified compares v with the quote's bytes.
func checkTDXVerified(t *testing.T, v *Verified, raw []byte) {
	t.Helper()
	field := func(off, n int) []byte { return raw[off : off+n] }
	if v.Platform != PlatformTDX || !v.Secure {
		t.Errorf("Platform %q Secure %v", v.Platform, v.Secure)
	}
	if !bytes.Equal(v.Measurement, field(qMrTd, 48)) {
		t.Errorf("Measurement %x, want MRTD %x", v.Measurement, field(qMrTd, 48))
	}
	if !bytes.Equal(v.ReportData[:], field(qReportData, 64)) {
		t.Errorf("ReportData %x, want %x", v.ReportData, field(qReportData, 64))
	}
	if !bytes.Equal(v.TCBVersion, field(qTeeTcbSvn, 16)) {
		t.Errorf("TCBVersion %x, want TEE_TCB_SVN %x", v.TCBVersion, field(qTeeTcbSvn, 16))
	}
	if !strings.HasPrefix(v.TCB, fmt.Sprintf("TEE_TCB_SVN %x, ", field(qTeeTcbSvn, 16))) {
		t.Errorf("TCB %q", v.TCB)
	}
	if want := raw[qTdAttributes]&1 == 1; v.Debug != want {
		t.Errorf("Debug %v, want %v", v.Debug, want)
	}
	if !bytes.Equal(v.HostData, field(qMrConfigID, 48)) {
		t.Errorf("HostData %x, want MRCONFIGID %x", v.HostData, field(qMrConfigID, 48))
	}
	if len(v.RTMRs) != 4 {
		t.Fatalf("%d RTMRs, want 4", len(v.RTMRs))
	}
	for i, r := range v.RTMRs {
		if !bytes.Equal(r, field(qRtmrs+48*i, 48)) {
			t.Errorf("RTMR%d %x, want %x", i, r, field(qRtmrs+48*i, 48))
		}
	}
	// Fields do not share memory: appending to one leaves the next intact.
	_ = append(v.Measurement, 0xff)
	if !bytes.Equal(v.HostData, field(qMrConfigID, 48)) {
		t.Error("appending to Measurement changed HostData")
	}
}

func TestTDXSyntheticVerifies(t *testing.T) {
	p := testPKI(t)
	b := p.bundle(t, tdxSynth{})
	v, err := p.verifier().Verify(b, tdxSynthTime)
	if err != nil {
		t.Fatal(err)
	}
	checkTDXVerified(t, v, b.Evidence)
	if !bytes.Equal(b.Evidence[:qSignedEnd], realTDXQuote(t)[:qSignedEnd]) {
		t.Error("the synthetic quote's header and body are not the production quote's")
	}
	if want := "TEE_TCB_SVN 03000400000000000000000000000000, TCB status UpToDate (FMSPC 50806f000000, TCB evaluation data number 17)"; v.TCB != want {
		t.Errorf("TCB %q, want %q", v.TCB, want)
	}

	// The wire form verifies the same.
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := UnmarshalBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.verifier().Verify(dec, tdxSynthTime); err != nil {
		t.Fatal(err)
	}
	t.Logf("bundle: %d bytes encoded", len(enc))
}

// One verifier, one bundle, several goroutines (run with -race).
func TestTDXVerifyConcurrently(t *testing.T) {
	p := testPKI(t)
	b := p.bundle(t, tdxSynth{})
	v := p.verifier()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := v.Verify(b, tdxSynthTime); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// The registered verifier trusts Intel's root only.
func TestTDXRegisteredRefusesTestRoot(t *testing.T) {
	_, err := registeredTDXVerifier(t).Verify(testPKI(t).bundle(t, tdxSynth{}), tdxSynthTime)
	if !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("Verify = %v, want the PCK chain refused", err)
	}
}

func TestTDXDebugAndKeyBinding(t *testing.T) {
	p := testPKI(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ReportDataForKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := p.bundle(t, tdxSynth{body: func(body []byte) {
		copy(body[qReportData-qBody:], rd[:])
		body[qTdAttributes-qBody] |= 1 // DEBUG
	}})
	pp := PlatformPolicy{Measurements: []string{hex.EncodeToString(b.Evidence[qMrTd : qMrTd+48])}}
	pol := Policy{Platforms: map[string]PlatformPolicy{PlatformTDX: pp}}
	var refused *RefusedError
	if _, err := pol.Admit(p.verifier(), b, pub, tdxSynthTime); !errors.As(err, &refused) || refused.Reason != ReasonDebugNotAllowed {
		t.Errorf("Admit of a debuggable TD = %v, want %s", err, ReasonDebugNotAllowed)
	}
	pp.AllowDebug = true
	pol.Platforms[PlatformTDX] = pp
	v, err := pol.Admit(p.verifier(), b, pub, tdxSynthTime)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Debug || v.ReportData != rd {
		t.Errorf("Debug %v ReportData %s; want true, %s", v.Debug, v.ReportData, rd)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := pol.Admit(p.verifier(), b, other, tdxSynthTime); !errors.As(err, &refused) || refused.Reason != ReasonReportDataMismatch {
		t.Errorf("Admit with another key = %v, want %s", err, ReasonReportDataMismatch)
	}
}

// tdxTripwire fails, and records, every HTTP request made through
// http.DefaultTransport, which go-tdx-guest's own getter uses.
type tdxTripwire struct {
	mu   sync.Mutex
	urls []string
}

func (w *tdxTripwire) RoundTrip(r *http.Request) (*http.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.urls = append(w.urls, r.URL.String())
	return nil, errors.New("tripwire: network use in an offline test")
}

func TestTDXNeverUsesNetwork(t *testing.T) {
	w := &tdxTripwire{}
	saved := http.DefaultTransport
	http.DefaultTransport = w
	t.Cleanup(func() { http.DefaultTransport = saved })

	p := testPKI(t)
	start := time.Now()
	if _, err := p.verifier().Verify(p.bundle(t, tdxSynth{}), tdxSynthTime); err != nil {
		t.Error(err)
	}
	if _, err := registeredTDXVerifier(t).Verify(realTDXBundle(t), tdxRealTime); err == nil {
		t.Error("the real quote verified")
	}
	// A signing chain whose root names no CRL location: go-tdx-guest has
	// nowhere to get the root CA CRL from, and must not go looking.
	b := realTDXBundle(t)
	b.Endorsements[tdxTCBSigningChain] = slices.Concat(p.tcb.Raw, p.tcb.Raw)
	if _, err := registeredTDXVerifier(t).Verify(b, tdxRealTime); err == nil {
		t.Error("a bundle without a usable root CRL location verified")
	}
	if len(w.urls) != 0 {
		t.Errorf("HTTP requests: %v", w.urls)
	}
	// go-tdx-guest's default getter retries for minutes; this took no
	// such time.
	t.Logf("3 verifications in %v", time.Since(start))
}

// The offline getter answers exactly go-tdx-guest's four PCS requests.
func TestTDXOfflineGetter(t *testing.T) {
	b := realTDXBundle(t)
	col, err := parseTDXEndorsements(b.Endorsements)
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseTDXQuote(b.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	g := &tdxOfflineGetter{col: col, quote: q}
	for _, tc := range []struct {
		url, header string
		body        []byte
	}{
		{pcs.TcbInfoURL("50806f000000"), "Tcb-Info-Issuer-Chain", b.Endorsements[tdxTCBInfo]},
		{pcs.QeIdentityURL(), "Sgx-Enclave-Identity-Issuer-Chain", b.Endorsements[tdxQEIdentity]},
		{pcs.PckCrlURL("platform"), "Sgx-Pck-Crl-Issuer-Chain", b.Endorsements[tdxPCKCRL]},
		{"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der", "", b.Endorsements[tdxRootCACRL]},
	} {
		h, body, err := g.Get(tc.url)
		if err != nil || !bytes.Equal(body, tc.body) {
			t.Errorf("Get(%s) = %d bytes, %v", tc.url, len(body), err)
			continue
		}
		if tc.header == "" {
			continue
		}
		chain, err := url.QueryUnescape(h[tc.header][0])
		if err != nil || strings.Count(chain, "-----BEGIN CERTIFICATE-----") != 2 {
			t.Errorf("Get(%s): header %s = %.60q…, %v", tc.url, tc.header, chain, err)
		}
	}
	for _, u := range []string{"https://api.trustedservices.intel.com/sgx/certification/v4/pckcert", "http://example.com/"} {
		if _, _, err := g.Get(u); err == nil {
			t.Errorf("Get(%s) answered", u)
		}
	}
}

// Every single-byte change to the signed part of the quote (header and TD
// quote body) is refused: by the quote's own structure checks for the first
// 8 header bytes (version, attestation key type, TEE type), by the
// attestation key's signature for the other 624.
func TestTDXCorruptedSignedPartRefused(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name     string
		v        Verifier
		b        *Bundle
		now      time.Time
		baseline string // "" if the intact bundle verifies
	}{
		{"real", registeredTDXVerifier(t), realTDXBundle(t), tdxRealTime, errNoTCBLevel},
		{"synthetic", p.verifier(), p.bundle(t, tdxSynth{}), tdxSynthTime, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.b, tc.now)
			if tc.baseline == "" && err != nil || tc.baseline != "" && (err == nil || !strings.Contains(err.Error(), tc.baseline)) {
				t.Fatalf("intact bundle: %v, want %q", err, tc.baseline)
			}
			start := time.Now()
			for i := range qSignedEnd {
				c := *tc.b
				c.Evidence = slices.Clone(tc.b.Evidence)
				c.Evidence[i] ^= 0x01
				_, err := tc.v.Verify(&c, tc.now)
				switch {
				case err == nil:
					t.Errorf("byte %d flipped: verified", i)
				case !errors.Is(err, ErrEvidence):
					t.Errorf("byte %d flipped: %v, not ErrEvidence", i, err)
				case i < 8 && !strings.Contains(err.Error(), "tdx: quote: "):
					t.Errorf("byte %d flipped: %v, want a quote structure error", i, err)
				case i >= 8 && !errors.Is(err, verify.ErrHashVerificationFail):
					t.Errorf("byte %d flipped: %v, want the quote signature refused", i, err)
				}
			}
			t.Logf("%d corruptions refused in %v", qSignedEnd, time.Since(start))
		})
	}
}

// Real collateral, verified outside its validity.
func TestTDXRealExpired(t *testing.T) {
	v := registeredTDXVerifier(t)
	b := realTDXBundle(t)
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), "error verifying PCK Certificate: x509: certificate has expired or is not yet valid"},
		{time.Date(2023, 7, 9, 0, 0, 0, 0, time.UTC), "QeIdentity has expired"},
		{time.Date(2023, 7, 19, 0, 0, 0, 0, time.UTC), "tcbInfo has expired"},
		{time.Date(2053, 7, 1, 1, 0, 0, 0, time.UTC), "error verifying PCK Certificate: x509: certificate has expired or is not yet valid"},
	} {
		_, err := v.Verify(b, tc.now)
		if !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("at %s: %v, want …%s", tc.now.Format(time.DateOnly), err, tc.want)
		}
	}
}

// Synthetic collateral that is valid but says no.
func TestTDXCollateralRefusals(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name string
		s    tdxSynth
		edit func(*Bundle)
		want string
	}{
		{"PCK revoked", tdxSynth{revokePCK: true}, nil, "PCK Leaf certificate in PCK certificate chain was revoked"},
		{"PCK CA revoked", tdxSynth{revokeCA: true}, nil, "intermediate certificate in PCK certificate chain was revoked"},
		{"TCB info of another FMSPC", tdxSynth{fmspc: "00606a000000"}, nil, `FMSPC from PCK Certificate("50806f000000") is not equal to FMSPC value from Intel PCS's reported TDX TCB info("00606a000000")`},
		{"TCB out of date", tdxSynth{tcbStatus: "OutOfDate"}, nil, `TCB Status is not "UpToDate", found "OutOfDate"`},
		{"TCB needs SW hardening", tdxSynth{tcbStatus: "SWHardeningNeeded"}, nil, `TCB Status is not "UpToDate", found "SWHardeningNeeded"`},
		{"TCB info signature", tdxSynth{}, func(b *Bundle) { resign(b, tdxTCBInfo) }, "tcbInfo response verification failed: could not verify response body using the signing certificate"},
		{"QE identity signature", tdxSynth{}, func(b *Bundle) { resign(b, tdxQEIdentity) }, "QeIdentity response verification failed: could not verify response body using the signing certificate"},
		{"CRLs swapped", tdxSynth{}, func(b *Bundle) {
			b.Endorsements[tdxPCKCRL], b.Endorsements[tdxRootCACRL] = b.Endorsements[tdxRootCACRL], b.Endorsements[tdxPCKCRL]
		}, "CRL verification failed"},
		{"PCK CRL by another CA", tdxSynth{}, func(b *Bundle) {
			b.Endorsements[tdxPCKCRL] = p.crl(t, p.root, p.rootKey, nil)
		}, "PCK CRL verification failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := p.bundle(t, tc.s)
			if tc.edit != nil {
				tc.edit(b)
			}
			_, err := p.verifier().Verify(b, tdxSynthTime)
			if !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v\nwant …%s", err, tc.want)
			}
		})
	}
}

// resign replaces the signature of a PCS JSON endorsement by another valid
// hex signature of the right length, from a key Intel never certified.
func resign(b *Bundle, i int) {
	e := b.Endorsements[i]
	at := bytes.LastIndex(e, []byte(`"signature":"`)) + len(`"signature":"`)
	forged := bytes.Repeat([]byte("1"), 128)
	b.Endorsements[i] = slices.Concat(e[:at], forged, e[at+128:])
}

// Malformed, missing or misplaced endorsements are named.
func TestTDXEndorsementsRefused(t *testing.T) {
	v := registeredTDXVerifier(t)
	good := realTDXBundle(t)
	e := good.Endorsements
	chain, err := x509.ParseCertificates(e[tdxTCBSigningChain])
	if err != nil {
		t.Fatal(err)
	}
	signing := chain[0]
	for _, tc := range []struct {
		name string
		e    [][]byte
		want string
	}{
		{"none", nil, "tdx: 0 endorsements, want 5: TCB info, QE identity, PCK CRL, root CA CRL, TCB signing chain"},
		{"four", e[:4], "tdx: 4 endorsements, want 5"},
		{"six", append(slices.Clone(e), e[0]), "tdx: 6 endorsements, want 5"},
		{"TCB info and QE identity swapped", [][]byte{e[1], e[0], e[2], e[3], e[4]}, `endorsement 0 (TCB info): tcbInfo.id is ""`},
		{"QE identity is TCB info", [][]byte{e[0], e[0], e[2], e[3], e[4]}, `endorsement 1 (QE identity): enclaveIdentity.id is ""`},
		{"garbage JSON", [][]byte{[]byte(`{"tcbInfo":`), e[1], e[2], e[3], e[4]}, "endorsement 0 (TCB info): unexpected end of JSON input"},
		{"CRL is JSON", [][]byte{e[0], e[1], e[0], e[3], e[4]}, "endorsement 2 (PCK CRL): x509:"},
		{"chain is a CRL", [][]byte{e[0], e[1], e[2], e[3], e[3]}, "endorsement 4 (TCB signing chain): x509:"},
		{"chain of one", [][]byte{e[0], e[1], e[2], e[3], signing.Raw}, "endorsement 4 (TCB signing chain): 1 certificates, want 2"},
		{"chain cut short", [][]byte{e[0], e[1], e[2], e[3], e[4][:len(e[4])-1]}, "endorsement 4 (TCB signing chain): x509:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(&Bundle{Platform: PlatformTDX, Evidence: good.Evidence, Endorsements: tc.e}, tdxRealTime)
			if !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v\nwant …%s", err, tc.want)
			}
		})
	}
	if _, err := (TDXVerifier{}).Verify(nil, tdxRealTime); !errors.Is(err, ErrBundle) {
		t.Errorf("nil bundle: %v", err)
	}
	if _, err := (TDXVerifier{}).Verify(&Bundle{Platform: PlatformVirtual, Evidence: good.Evidence, Endorsements: e}, tdxRealTime); !errors.Is(err, ErrEvidence) {
		t.Errorf("virtual bundle: %v", err)
	}
}

// Quotes whose framing is wrong are refused before go-tdx-guest parses
// them (which would panic on some), each by name.
func TestTDXQuoteFramingRefused(t *testing.T) {
	v := registeredTDXVerifier(t)
	good := realTDXBundle(t)
	with := func(q []byte) *Bundle {
		return &Bundle{Platform: PlatformTDX, Evidence: q, Endorsements: good.Endorsements}
	}
	upstream := readTDX(t, "tdx_prod_quote_SPR_E4.dat")
	if _, err := v.Verify(with(upstream), tdxRealTime); err == nil || !strings.Contains(err.Error(), "quote: signature data size field says 4299 bytes, 4338 follow") {
		t.Errorf("quote with 39 trailing bytes: %v", err)
	}
	q := good.Evidence
	for n := range len(q) {
		if _, err := (TDXVerifier{}).Verify(with(q[:n]), tdxRealTime); !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), "tdx: quote: ") {
			t.Fatalf("quote truncated to %d bytes: %v", n, err)
		}
	}
	v5 := slices.Clone(q)
	v5[0] = 5
	if _, err := v.Verify(with(v5), tdxRealTime); err == nil || !strings.Contains(err.Error(), "quote: version 5, want 4") {
		t.Errorf("version 5: %v", err)
	}
}

func TestTDXCollateralURLs(t *testing.T) {
	got, err := TDXCollateralURLs(realTDXQuote(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000",
		"https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity",
		"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
		"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
	}
	if !slices.Equal(got, want) {
		t.Errorf("TDXCollateralURLs = %q\nwant %q", got, want)
	}
	blk, _ := pem.Decode([]byte(intelSGXRootCAPEM))
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !slices.Equal(root.CRLDistributionPoints, want[3:]) {
		t.Errorf("the pinned root's CRL distribution points are %q (%v)", root.CRLDistributionPoints, err)
	}
	if _, err := TDXCollateralURLs(realTDXQuote(t)[:700]); !errors.Is(err, ErrEvidence) {
		t.Errorf("truncated quote: %v", err)
	}
}

func TestNewTDXBundle(t *testing.T) {
	c := realTDXCollateral(t)
	want := realTDXBundle(t)
	if want.Platform != PlatformTDX || !bytes.Equal(want.Evidence, realTDXQuote(t)) || len(want.Endorsements) != 5 {
		t.Fatalf("bundle %s, %d bytes, %d endorsements", want.Platform, len(want.Evidence), len(want.Endorsements))
	}

	// PEM CRLs, and the chain as PCS's header value (as saved from curl,
	// or escaped the Go way), give the same bundle.
	escaped := url.QueryEscape(string(c.TCBSigningChain))
	for _, chain := range []string{strings.ReplaceAll(escaped, "+", "%20") + "\r\n", escaped} {
		alt := c
		alt.PCKCRL = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.PCKCRL})
		alt.RootCACRL = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.RootCACRL})
		alt.TCBSigningChain = []byte(chain)
		got, err := NewTDXBundle(realTDXQuote(t), alt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got.Endorsements, want.Endorsements, bytes.Equal) {
			t.Errorf("PEM CRLs and chain %.40q… give other endorsements", chain)
		}
	}

	for _, tc := range []struct {
		name  string
		quote []byte
		edit  func(*TDXCollateral)
	}{
		{"truncated quote", realTDXQuote(t)[:700], nil},
		{"no TCB info", realTDXQuote(t), func(c *TDXCollateral) { c.TCBInfo = nil }},
		{"QE identity for TCB info", realTDXQuote(t), func(c *TDXCollateral) { c.TCBInfo = c.QEIdentity }},
		{"chain not PEM", realTDXQuote(t), func(c *TDXCollateral) { c.TCBSigningChain = c.RootCACRL }},
		{"chain with a key", realTDXQuote(t), func(c *TDXCollateral) {
			c.TCBSigningChain = append(slices.Clone(c.TCBSigningChain), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...)
		}},
		{"chain with garbage", realTDXQuote(t), func(c *TDXCollateral) { c.TCBSigningChain = append(slices.Clone(c.TCBSigningChain), "junk"...) }},
	} {
		c := realTDXCollateral(t)
		if tc.edit != nil {
			tc.edit(&c)
		}
		if _, err := NewTDXBundle(tc.quote, c); !errors.Is(err, ErrBundle) {
			t.Errorf("%s: %v, want ErrBundle", tc.name, err)
		}
	}
	// The shipped file's unsigned trailing bytes are dropped, not bundled.
	b, err := NewTDXBundle(readTDX(t, "tdx_prod_quote_SPR_E4.dat"), realTDXCollateral(t))
	if err != nil || !bytes.Equal(b.Evidence, realTDXQuote(t)) {
		t.Fatalf("bundle of the padded file: %v; want the quote without its padding", err)
	}
}

// FuzzTDXVerify feeds arbitrary evidence, with valid synthetic collateral,
// to the verifier: it must never panic, and whatever it accepts must carry
// the signed header and body of the one quote the test keys signed.
func FuzzTDXVerify(f *testing.F) {
	p := testPKI(f)
	good := p.bundle(f, tdxSynth{})
	f.Add(good.Evidence)
	f.Add(realTDXQuote(f))
	f.Add(readTDX(f, "tdx_prod_quote_SPR_E4.dat"))
	f.Add(good.Evidence[:qSigData+200])
	f.Add([]byte{4, 0, 2, 0, 0x81, 0, 0, 0})
	v := p.verifier()
	f.Fuzz(func(t *testing.T, ev []byte) {
		b := &Bundle{Platform: PlatformTDX, Evidence: ev, Endorsements: good.Endorsements}
		got, err := v.Verify(b, tdxSynthTime)
		if err != nil {
			if !errors.Is(err, ErrEvidence) {
				t.Fatalf("error %v does not wrap ErrEvidence", err)
			}
			return
		}
		if !bytes.Equal(ev[:qSignedEnd], good.Evidence[:qSignedEnd]) {
			t.Fatalf("verified a quote whose signed part was not signed")
		}
		if !bytes.Equal(got.Measurement, ev[qMrTd:qMrTd+48]) {
			t.Fatalf("Measurement %x is not the quote's MRTD", got.Measurement)
		}
	})
}

// TestVerifyTDXQuoteWithoutCollateral: the production quote go-tdx-guest
// ships is genuine: its PCK chain leads to the pinned Intel root and its
// signatures verify at a time its certificates were valid (only its TCB
// cannot be evaluated against the library's sample collateral, whose
// levels need higher SVNs). Every single-byte corruption of its signed
// part is refused, and its certificates are not valid in 2053.
func TestVerifyTDXQuoteWithoutCollateral(t *testing.T) {
	quote := realTDXQuote(t)
	v, err := VerifyTDXQuote(quote, tdxRealTime)
	if err != nil {
		t.Fatalf("the production quote does not verify: %v", err)
	}
	if v.Platform != PlatformTDX || !v.Secure || len(v.Measurement) != 48 || !strings.Contains(v.TCB, "not evaluated") {
		t.Fatalf("verified %+v", v)
	}
	for i := range qSignedEnd {
		bad := slices.Clone(quote)
		bad[i] ^= 0x01
		if _, err := VerifyTDXQuote(bad, tdxRealTime); !errors.Is(err, ErrEvidence) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := VerifyTDXQuote(quote, time.Date(2053, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrEvidence) {
		t.Fatalf("in 2053: %v", err)
	}
	// The file as go-tdx-guest ships it, with unsigned bytes after the
	// signature data, verifies too; they are not part of the quote.
	if _, err := VerifyTDXQuote(readTDX(t, "tdx_prod_quote_SPR_E4.dat"), tdxRealTime); err != nil {
		t.Fatalf("the shipped file: %v", err)
	}
}

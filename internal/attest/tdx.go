package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
)

// PlatformTDX is the name of the Intel TDX platform.
const PlatformTDX = "tdx"

func init() { verifierFactories[PlatformTDX] = newTDXVerifier }

func newTDXVerifier() (Verifier, error) { return TDXVerifier{}, nil }

// The endorsements of a "tdx" bundle: exactly these five, in this order.
// The first four are Intel PCS response bodies byte for byte; the fifth is
// the certificate chain PCS sends in a response header (TCB-Info-Issuer-Chain)
// because neither the quote nor the collateral bodies carry it, and without
// it the signatures on the TCB info and QE identity cannot be checked.
const (
	tdxTCBInfo         = iota // GET /tdx/certification/v4/tcb?fmspc=…: JSON
	tdxQEIdentity             // GET /tdx/certification/v4/qe/identity: JSON
	tdxPCKCRL                 // GET /sgx/certification/v4/pckcrl?ca=…&encoding=der: DER
	tdxRootCACRL              // the Intel SGX Root CA CRL: DER
	tdxTCBSigningChain        // Intel SGX TCB Signing cert, then Intel SGX Root CA: DER, concatenated
	tdxEndorsements
)

var tdxEndorsementNames = [tdxEndorsements]string{
	tdxTCBInfo:         "TCB info",
	tdxQEIdentity:      "QE identity",
	tdxPCKCRL:          "PCK CRL",
	tdxRootCACRL:       "root CA CRL",
	tdxTCBSigningChain: "TCB signing chain",
}

// intelSGXRootCAPEM is the Intel SGX Root CA certificate (SHA-256
// fingerprint 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3,
// valid until 2049), the trust anchor of every TDX quote and of Intel's TCB
// signing chain. It is the certificate go-tdx-guest embeds as its default
// root; Coco pins its own copy and always passes it explicitly, because the
// library logs a warning to stdout each time it falls back to its embedded
// root.
const intelSGXRootCAPEM = `-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
`

// intelSGXRoots holds only the pinned Intel SGX Root CA. A broken constant
// is a build defect, so it panics at init rather than failing every Verify.
var intelSGXRoots = func() *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(intelSGXRootCAPEM)) {
		panic("attest: the pinned Intel SGX Root CA certificate does not parse")
	}
	return pool
}()

// TDXVerifier checks "tdx" bundles fully offline through go-tdx-guest: the
// quote's PCK certificate chain up to the Intel SGX Root CA pinned in this
// binary, the PCK and root CA CRLs, the TCB info and QE identity (signed by
// Intel's TCB signing certificate, itself checked against the same root) and
// their expiry at now, the quote's signature by the attestation key, the QE
// report's signature by the PCK key and its binding of the attestation key,
// and the TCB level. go-tdx-guest accepts only the TCB status UpToDate, for
// the platform, the TDX module and the QE alike; every other status
// (SWHardeningNeeded, ConfigurationNeeded, OutOfDate, Revoked, …) is
// refused.
//
// The bundle's evidence is the raw TDX quote (version 4); its endorsements
// are exactly five, in this order (TDXCollateral describes each, and
// NewTDXBundle builds them): TCB info, QE identity, PCK CRL, root CA CRL,
// TCB signing chain. Nothing is fetched: every request go-tdx-guest would
// send to Intel PCS is answered from the bundle, and any other request
// fails.
//
// The zero value is ready to use and trusts only the pinned Intel SGX Root
// CA; it is safe for concurrent use.
type TDXVerifier struct {
	roots *x509.CertPool // nil: intelSGXRoots; tests set their own
}

// Verify implements Verifier. A zero now means time.Now(). Errors wrap
// ErrEvidence (or ErrBundle for a nil bundle) and say which check failed;
// the checks inside go-tdx-guest are named by its own messages, which are
// kept verbatim (and its sentinel errors, such as
// verify.ErrHashVerificationFail, stay matchable with errors.Is).
func (v TDXVerifier) Verify(b *Bundle, now time.Time) (*Verified, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrBundle)
	}
	if b.Platform != PlatformTDX {
		return nil, fmt.Errorf("%w: %s bundle given to the tdx verifier", ErrEvidence, b.Platform)
	}
	quote, err := parseTDXQuote(b.Evidence)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	col, err := parseTDXEndorsements(b.Endorsements)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	roots := v.roots
	if roots == nil {
		roots = intelSGXRoots
	}
	// Options are built per call: go-tdx-guest stores its intermediate
	// state (chain, collateral) in them.
	opts := &verify.Options{
		GetCollateral:    true,
		CheckRevocations: true,
		Getter:           &tdxOfflineGetter{col: col, quote: quote},
		Now:              now,
		TrustedRoots:     roots,
	}
	if err := verify.TdxQuote(quote, opts); err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	return tdxVerified(quote, col), nil
}

// tdxVerified reads the claims out of a verified quote. The quote's fields
// share one backing array, so each is cloned: appending to one must not
// overwrite another.
func tdxVerified(q *pb.QuoteV4, col *tdxCollateral) *Verified {
	body := q.GetTdQuoteBody()
	v := &Verified{
		Platform:    PlatformTDX,
		Measurement: slices.Clone(body.GetMrTd()),
		Secure:      true,
		// UpToDate because go-tdx-guest refuses every other status.
		TCB: fmt.Sprintf("TEE_TCB_SVN %x, TCB status UpToDate (FMSPC %s, TCB evaluation data number %d)",
			body.GetTeeTcbSvn(), col.fmspc, col.tcbEvaluationDataNumber),
		TCBVersion: slices.Clone(body.GetTeeTcbSvn()),
		// TDATTRIBUTES bit 0 is DEBUG: the host can read and write the
		// TD's memory and registers.
		Debug:    body.GetTdAttributes()[0]&1 != 0,
		HostData: slices.Clone(body.GetMrConfigId()),
	}
	copy(v.ReportData[:], body.GetReportData())
	for _, r := range body.GetRtmrs() {
		v.RTMRs = append(v.RTMRs, slices.Clone(r))
	}
	return v
}

// Quote v4 layout (Intel TDX DCAP Quoting Library API): the
// attestation key signs the header and TD quote body; the signature data
// that follows carries that signature, the key, and the certification data
// vouching for the key (the QE report, signed by the PCK key, and the PCK
// certificate chain).
const (
	tdxQuoteHeaderSize  = 48
	tdxQuoteBodySize    = 584
	tdxQuoteSignedSize  = tdxQuoteHeaderSize + tdxQuoteBodySize
	tdxSigDataFixedSize = 64 + 64 + 2 + 4 // signature, attestation key, certification data type and size
	tdxQECertFixedSize  = 384 + 64 + 2    // QE report, its signature, QE authentication data size
	tdxPCKChainHeadSize = 2 + 4           // PCK certification data type and size
)

// parseTDXQuote checks that raw is exactly one quote, every length field
// consistent with the bytes present and nothing after the signature data,
// before go-tdx-guest parses it: abi.QuoteToProto slices without bounds
// checks and panics on truncated input, and ignores trailing bytes that no
// signature covers (a bundle should have one encoding).
func parseTDXQuote(raw []byte) (*pb.QuoteV4, error) {
	if len(raw) < tdxQuoteSignedSize+4 {
		return nil, fmt.Errorf("quote: %d bytes, shorter than its header and TD quote body", len(raw))
	}
	// The layout below is version 4's, the only one go-tdx-guest reads.
	if v := binary.LittleEndian.Uint16(raw); v != abi.QuoteVersion {
		return nil, fmt.Errorf("quote: version %d, want %d", v, abi.QuoteVersion)
	}
	sigData := raw[tdxQuoteSignedSize+4:]
	if n := binary.LittleEndian.Uint32(raw[tdxQuoteSignedSize:]); uint64(n) != uint64(len(sigData)) {
		return nil, fmt.Errorf("quote: signature data size field says %d bytes, %d follow", n, len(sigData))
	}
	if len(sigData) < tdxSigDataFixedSize {
		return nil, fmt.Errorf("quote: signature data is %d bytes, shorter than its fixed part", len(sigData))
	}
	certData := sigData[tdxSigDataFixedSize:]
	if n := binary.LittleEndian.Uint32(sigData[tdxSigDataFixedSize-4:]); uint64(n) != uint64(len(certData)) {
		return nil, fmt.Errorf("quote: certification data size field says %d bytes, %d follow", n, len(certData))
	}
	if len(certData) < tdxQECertFixedSize {
		return nil, fmt.Errorf("quote: certification data is %d bytes, shorter than a QE report and its signature", len(certData))
	}
	authSize := int(binary.LittleEndian.Uint16(certData[tdxQECertFixedSize-2:]))
	rest := certData[tdxQECertFixedSize:]
	if len(rest) < authSize+tdxPCKChainHeadSize {
		return nil, fmt.Errorf("quote: QE authentication data (%d bytes) and PCK chain header overrun the certification data", authSize)
	}
	chain := rest[authSize+tdxPCKChainHeadSize:]
	if n := binary.LittleEndian.Uint32(rest[authSize+2:]); uint64(n) != uint64(len(chain)) {
		return nil, fmt.Errorf("quote: PCK certificate chain size field says %d bytes, %d follow", n, len(chain))
	}
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	v4, ok := q.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("quote: go-tdx-guest parsed a %T, want a version 4 quote", q)
	}
	return v4, nil
}

// tdxCollateral is a bundle's endorsements, parsed.
type tdxCollateral struct {
	tcbInfo, qeIdentity []byte // PCS bodies, verbatim: the signatures cover their bytes
	pckCRL, rootCACRL   []byte // DER
	// signingChain is the TCB signing chain as PCS sends it in the
	// TCB-Info-Issuer-Chain and SGX-Enclave-Identity-Issuer-Chain headers
	// (PEM, URL-escaped): Intel signs TCB info and QE identity with the
	// same key.
	signingChain string
	// rootCACRLURLs are the CRL distribution points of the chain's root,
	// where go-tdx-guest asks for the root CA CRL.
	rootCACRLURLs []string

	fmspc                   string // of the TCB info
	tcbEvaluationDataNumber int    // of the TCB info
}

func parseTDXEndorsements(e [][]byte) (*tdxCollateral, error) {
	if len(e) != tdxEndorsements {
		return nil, fmt.Errorf("%d endorsements, want %d: %s", len(e), tdxEndorsements, strings.Join(tdxEndorsementNames[:], ", "))
	}
	bad := func(i int, err error) error {
		return fmt.Errorf("endorsement %d (%s): %w", i, tdxEndorsementNames[i], err)
	}
	col := &tdxCollateral{
		tcbInfo:    e[tdxTCBInfo],
		qeIdentity: e[tdxQEIdentity],
		pckCRL:     e[tdxPCKCRL],
		rootCACRL:  e[tdxRootCACRL],
	}
	// The IDs are checked here, though go-tdx-guest checks them again, so
	// that swapped or misplaced endorsements are named as such.
	var tcb pcs.TdxTcbInfo
	if err := json.Unmarshal(col.tcbInfo, &tcb); err != nil {
		return nil, bad(tdxTCBInfo, err)
	}
	if tcb.TcbInfo.ID != "TDX" {
		return nil, bad(tdxTCBInfo, fmt.Errorf("tcbInfo.id is %q, want \"TDX\" (PCS /tdx/certification/v4/tcb)", tcb.TcbInfo.ID))
	}
	col.fmspc, col.tcbEvaluationDataNumber = tcb.TcbInfo.Fmspc, tcb.TcbInfo.TcbEvaluationDataNumber
	var qe pcs.QeIdentity
	if err := json.Unmarshal(col.qeIdentity, &qe); err != nil {
		return nil, bad(tdxQEIdentity, err)
	}
	if qe.EnclaveIdentity.ID != "TD_QE" {
		return nil, bad(tdxQEIdentity, fmt.Errorf("enclaveIdentity.id is %q, want \"TD_QE\" (PCS /tdx/certification/v4/qe/identity)", qe.EnclaveIdentity.ID))
	}
	for _, i := range []int{tdxPCKCRL, tdxRootCACRL} {
		if _, err := x509.ParseRevocationList(e[i]); err != nil {
			return nil, bad(i, err)
		}
	}
	certs, err := x509.ParseCertificates(e[tdxTCBSigningChain])
	if err != nil {
		return nil, bad(tdxTCBSigningChain, err)
	}
	if len(certs) != 2 {
		return nil, bad(tdxTCBSigningChain, fmt.Errorf("%d certificates, want 2 (TCB signing, root CA)", len(certs)))
	}
	var chainPEM []byte
	for _, c := range certs {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	col.signingChain = url.QueryEscape(string(chainPEM))
	col.rootCACRLURLs = certs[1].CRLDistributionPoints
	return col, nil
}

// tdxOfflineGetter stands in for Intel PCS. go-tdx-guest asks it for the
// four pieces of collateral, each with its issuer chain in a response
// header as PCS would send it, and it answers from the bundle. Any other
// request fails, and it never touches the network.
type tdxOfflineGetter struct {
	col   *tdxCollateral
	quote *pb.QuoteV4
}

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (g *tdxOfflineGetter) Get(u string) (map[string][]string, []byte, error) {
	switch {
	case strings.HasPrefix(u, pcs.TcbInfoURL("")):
		// Served for any FMSPC: a TCB info for another platform is then
		// refused by name (FMSPC mismatch), not as a failed download.
		return map[string][]string{"Tcb-Info-Issuer-Chain": {g.col.signingChain}}, g.col.tcbInfo, nil
	case u == pcs.QeIdentityURL():
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {g.col.signingChain}}, g.col.qeIdentity, nil
	case u == pcs.PckCrlURL("platform") || u == pcs.PckCrlURL("processor"):
		chain, err := pckCRLIssuerChain(g.quote)
		if err != nil {
			return nil, nil, err
		}
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": {chain}}, g.col.pckCRL, nil
	case slices.Contains(g.col.rootCACRLURLs, u):
		return nil, g.col.rootCACRL, nil
	}
	// Only ever seen inside go-tdx-guest's own error, which Verify wraps.
	return nil, nil, fmt.Errorf("offline verification: the bundle has nothing for %s", u)
}

// pckCRLIssuerChain returns the PCK CRL's issuer chain, which PCS sends in
// the Sgx-Pck-Crl-Issuer-Chain header: the PCK's issuing CA and the root,
// i.e. the quote's PCK chain without its leaf. Taking it from the quote
// rather than the bundle loses nothing: go-tdx-guest checks the CRL's
// signature against the quote's chain, and these copies only for expiry.
func pckCRLIssuerChain(q *pb.QuoteV4) (string, error) {
	rest := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var out []byte
	for i := range 3 {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return "", errors.New("the quote's PCK certificate chain has fewer than 3 certificates")
		}
		if i > 0 {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})...)
		}
	}
	return url.QueryEscape(string(out)), nil
}

// TDXCollateral is what a "tdx" bundle needs besides the quote to verify
// offline: Intel PCS's answers for the quoting platform, fetched by the
// operator (PCS needs no authentication for these) and refreshed before
// the earliest nextUpdate among them.
type TDXCollateral struct {
	// TCBInfo is the body of GET
	// https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=F
	// for the FMSPC in the quote's PCK certificate, verbatim.
	TCBInfo []byte
	// QEIdentity is the body of GET
	// https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity,
	// verbatim.
	QEIdentity []byte
	// PCKCRL is the body of GET
	// https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=C&encoding=der
	// with C "platform" or "processor" (the CA that issued the PCK
	// certificate), DER or PEM.
	PCKCRL []byte
	// RootCACRL is the Intel SGX Root CA CRL, GET
	// https://certificates.trustedservices.intel.com/IntelSGXRootCA.der,
	// DER or PEM.
	RootCACRL []byte
	// TCBSigningChain is the value of the TCB-Info-Issuer-Chain header of
	// the TCB info response (URL-escaped PEM, as sent, or unescaped): the
	// Intel SGX TCB Signing certificate, then the Intel SGX Root CA.
	TCBSigningChain []byte
}

// TDXCollateralURLs returns where Intel PCS serves the collateral for
// quote, in endorsement order: the URLs of TDXCollateral's TCBInfo (for the
// FMSPC in the quote's PCK certificate), QEIdentity, PCKCRL (for the CA that
// issued it) and RootCACRL. TCBSigningChain is the TCB-Info-Issuer-Chain
// header of the first response. The quote is parsed, not verified. Errors
// wrap ErrEvidence.
func TDXCollateralURLs(quote []byte) ([]string, error) {
	q, err := parseTDXQuote(quote)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	blk, _ := pem.Decode(q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain())
	if blk == nil {
		return nil, fmt.Errorf("%w: tdx: the quote has no PEM PCK certificate", ErrEvidence)
	}
	pck, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: PCK certificate: %w", ErrEvidence, err)
	}
	ext, err := pcs.PckCertificateExtensions(pck)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: PCK certificate: %w", ErrEvidence, err)
	}
	var ca string
	switch pck.Issuer.CommonName {
	case "Intel SGX PCK Platform CA":
		ca = "platform"
	case "Intel SGX PCK Processor CA":
		ca = "processor"
	default:
		return nil, fmt.Errorf("%w: tdx: PCK certificate issued by %q, not an Intel PCK CA", ErrEvidence, pck.Issuer.CommonName)
	}
	return []string{pcs.TcbInfoURL(ext.FMSPC), pcs.QeIdentityURL(), pcs.PckCrlURL(ca), intelSGXRootCACRLURL}, nil
}

// intelSGXRootCACRLURL is the CRL distribution point of the Intel SGX Root
// CA.
const intelSGXRootCACRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// NewTDXBundle returns the "tdx" bundle for quote, a TDX quote as the guest
// produced it (TDX.Evidence's Bundle.Evidence), and the collateral to verify
// it. It stores the CRLs and the chain in DER whatever the input form, and
// checks that each piece parses as what it claims to be; it verifies
// nothing (TDXVerifier does). Errors wrap ErrBundle.
func NewTDXBundle(quote []byte, c TDXCollateral) (*Bundle, error) {
	quote = tdxQuoteOnly(quote)
	if _, err := parseTDXQuote(quote); err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrBundle, err)
	}
	chain, err := tdxChainDER(c.TCBSigningChain)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: %s: %w", ErrBundle, tdxEndorsementNames[tdxTCBSigningChain], err)
	}
	e := make([][]byte, tdxEndorsements)
	e[tdxTCBInfo] = slices.Clone(c.TCBInfo)
	e[tdxQEIdentity] = slices.Clone(c.QEIdentity)
	e[tdxPCKCRL] = tdxCRLDER(c.PCKCRL)
	e[tdxRootCACRL] = tdxCRLDER(c.RootCACRL)
	e[tdxTCBSigningChain] = chain
	if _, err := parseTDXEndorsements(e); err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrBundle, err)
	}
	return &Bundle{Platform: PlatformTDX, Evidence: slices.Clone(quote), Endorsements: e}, nil
}

// tdxCRLDER returns the DER of a PEM CRL, and anything else unchanged (for
// parseTDXEndorsements to judge).
func tdxCRLDER(b []byte) []byte {
	if blk, _ := pem.Decode(b); blk != nil && blk.Type == "X509 CRL" {
		return blk.Bytes
	}
	return slices.Clone(b)
}

// tdxChainDER returns the concatenated DER of the certificates in a PEM
// chain, URL-escaped (as in the PCS header) or not.
func tdxChainDER(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	// PEM has line breaks; its escaped form has them as %0A. Unescaping
	// PEM itself would turn the '+' of its base64 into spaces.
	if !strings.Contains(s, "\n") {
		var err error
		if s, err = url.QueryUnescape(s); err != nil {
			return nil, err
		}
	}
	var der []byte
	rest := []byte(s)
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		der = append(der, blk.Bytes...)
	}
	if der == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not a PEM certificate chain")
	}
	return der, nil
}

// VerifyTDXQuote verifies a TDX quote without collateral, offline: the
// PCK chain to the pinned Intel SGX Root CA valid at now, the QE report's
// signature by the PCK key, its binding of the attestation key, and the
// quote's signature. It does not check revocation, the TCB info or the QE
// identity, so it says the quote is genuine, not that the platform is up
// to date: Verified.TCB says the TCB status was not evaluated. `coco
// attest verify` uses it when no collateral is given; joining needs a
// bundle with collateral (TDXVerifier).
//
// Bytes after the quote's signature data, which no signature covers, are
// dropped (tdxQuoteOnly).
func VerifyTDXQuote(raw []byte, now time.Time) (*Verified, error) {
	quote, err := parseTDXQuote(tdxQuoteOnly(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	opts := &verify.Options{Getter: noFetch{}, Now: now, TrustedRoots: intelSGXRoots}
	if err := verify.TdxQuote(quote, opts); err != nil {
		return nil, fmt.Errorf("%w: tdx: %w", ErrEvidence, err)
	}
	v := tdxVerified(quote, &tdxCollateral{})
	v.TCB = fmt.Sprintf("TEE_TCB_SVN %x, TCB status not evaluated (no collateral)", quote.GetTdQuoteBody().GetTeeTcbSvn())
	return v, nil
}

// noFetch is the getter of a verification that has no collateral: it
// refuses every request, so nothing is ever fetched.
type noFetch struct{}

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (noFetch) Get(u string) (map[string][]string, []byte, error) {
	return nil, nil, fmt.Errorf("offline verification without collateral: nothing may be fetched (%s)", u)
}

// tdxQuoteOnly drops the bytes after a quote's signature data, as its
// size field declares it: no signature covers them, and quote files are
// sometimes padded (go-tdx-guest's own test quote is). What a raw quote
// is given to (VerifyTDXQuote, NewTDXBundle) drops them; a bundle never
// has them.
func tdxQuoteOnly(raw []byte) []byte {
	if len(raw) < tdxQuoteSignedSize+4 {
		return raw
	}
	end := uint64(tdxQuoteSignedSize+4) + uint64(binary.LittleEndian.Uint32(raw[tdxQuoteSignedSize:]))
	if end < uint64(len(raw)) {
		return raw[:end]
	}
	return raw
}

package attest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/go-tdx-guest/client"
)

var (
	// ErrTDXQuote: this machine cannot produce a TDX quote: it is not a TDX
	// guest (neither configfs-tsm nor /dev/tdx_guest is there), or the
	// guest's quote service failed or returned something other than a TDX
	// quote binding the requested report data.
	ErrTDXQuote = errors.New("attest: tdx: cannot get a quote")
	// ErrTDXSealing: Seal and Unseal on "tdx". The TDX module derives no
	// sealing key for a TD that go-tdx-guest exposes, so this build cannot
	// seal; sealing on TDX needs a key-release service, not yet here.
	ErrTDXSealing = errors.New("attest: sealing is not available on tdx in this build")
)

// TDX is the Intel TDX guest platform. It produces evidence, a TD quote
// binding the report data, through go-tdx-guest's client: the Linux
// configfs-tsm report interface (/sys/kernel/config/tsm/report) if the
// kernel has it, else the /dev/tdx_guest device. It cannot seal
// (ErrTDXSealing).
//
// Its bundles carry the quote alone. The collateral that verification
// needs (TDXCollateral) is Intel's, not the guest's: operators fetch it
// from Intel PCS and attach it with NewTDXBundle.
//
// A TDX is immutable and safe for concurrent use.
type TDX struct {
	quotes client.QuoteProvider
}

// NewTDX returns the TDX platform of this machine, or an error wrapping
// ErrTDXQuote that names both interfaces it looked for if this is not a
// TDX guest. It does not request a quote.
func NewTDX() (*TDX, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil { // an OS without configfs-tsm at all
		return nil, fmt.Errorf("%w: %w", ErrTDXQuote, err)
	}
	tsmErr := qp.IsSupported()
	if tsmErr == nil {
		return &TDX{quotes: qp}, nil
	}
	// client.GetRawQuote falls back to the device by itself; open it once
	// here only so that a machine with neither fails now, by name.
	dev, devErr := client.OpenDevice()
	if devErr != nil {
		return nil, fmt.Errorf("%w: not a TDX guest: no configfs-tsm (%w) and no TDX guest device (%w)", ErrTDXQuote, tsmErr, devErr)
	}
	dev.Close()
	return &TDX{quotes: qp}, nil
}

// Name implements Platform.
func (*TDX) Name() string { return PlatformTDX }

// Secure implements Platform: the quote is signed by hardware-protected keys
// under Intel's root.
func (*TDX) Secure() bool { return true }

// Seal implements Platform; it always fails with ErrTDXSealing.
func (*TDX) Seal([]byte) ([]byte, error) { return nil, ErrTDXSealing }

// Unseal implements Platform; it always fails with ErrTDXSealing.
func (*TDX) Unseal([]byte) ([]byte, error) { return nil, ErrTDXSealing }

// Evidence implements Platform: a bundle whose evidence is a fresh TD quote
// binding rd, and which has no endorsements: it verifies only once the
// collateral is attached (NewTDXBundle(b.Evidence, collateral)). It checks
// that what the guest returned is a well-formed TDX quote of rd, which
// catches, among others, a configfs-tsm provider of another kind of TEE.
// Errors wrap ErrTDXQuote.
func (t *TDX) Evidence(rd ReportData) (*Bundle, error) {
	raw, err := client.GetRawQuote(t.quotes, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTDXQuote, err)
	}
	q, err := parseTDXQuote(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the guest returned no valid TDX %w", ErrTDXQuote, err)
	}
	if got := q.GetTdQuoteBody().GetReportData(); !bytes.Equal(got, rd[:]) {
		return nil, fmt.Errorf("%w: the guest returned a quote of report data %x…, not %x…", ErrTDXQuote, got[:8], rd[:8])
	}
	return &Bundle{Platform: PlatformTDX, Evidence: raw}, nil
}

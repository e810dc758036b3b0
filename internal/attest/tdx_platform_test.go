package attest

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// This machine is no TDX guest: NewTDX says so, naming what it looked for.
func TestNewTDXNotAGuest(t *testing.T) {
	for _, p := range []string{"/dev/tdx_guest", "/sys/kernel/config/tsm/report"} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists: this may be a TDX guest", p)
		}
	}
	_, err := NewTDX()
	if !errors.Is(err, ErrTDXQuote) {
		t.Fatalf("NewTDX() = %v, want ErrTDXQuote", err)
	}
	for _, want := range []string{"/dev/tdx_guest", "/sys/kernel/config/tsm/report"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewTDX() = %v, does not name %s", err, want)
		}
	}
	t.Log(err)
}

// fakeTDXQuotes is a go-tdx-guest client.QuoteProvider that answers with
// quotes signed by the synthetic test PKI.
type fakeTDXQuotes struct {
	t     testing.TB
	p     *tdxTestPKI
	quote func(rd [64]byte) ([]byte, error) // nil: a good quote of rd
}

func (f *fakeTDXQuotes) IsSupported() error { return nil }

func (f *fakeTDXQuotes) GetRawQuote(rd [64]byte) ([]uint8, error) {
	if f.quote != nil {
		return f.quote(rd)
	}
	return f.p.quote(f.t, tdxSynth{body: func(body []byte) { copy(body[qReportData-qBody:], rd[:]) }}), nil
}

// Evidence from a (fake) guest, completed with the collateral, verifies
// and binds the report data asked for.
func TestTDXEvidence(t *testing.T) {
	p := testPKI(t)
	plat := &TDX{quotes: &fakeTDXQuotes{t: t, p: p}}
	if plat.Name() != PlatformTDX || !plat.Secure() {
		t.Fatalf("Name %q Secure %v", plat.Name(), plat.Secure())
	}
	var rd ReportData
	copy(rd[:], "coco tdx evidence test")
	b, err := plat.Evidence(rd)
	if err != nil {
		t.Fatal(err)
	}
	if b.Platform != PlatformTDX || len(b.Endorsements) != 0 {
		t.Fatalf("bundle %s with %d endorsements, want tdx with none", b.Platform, len(b.Endorsements))
	}
	if _, err := p.verifier().Verify(b, tdxSynthTime); !errors.Is(err, ErrEvidence) {
		t.Errorf("bundle without collateral: %v, want ErrEvidence", err)
	}
	full, err := NewTDXBundle(b.Evidence, p.collateral(t, tdxSynth{}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.verifier().Verify(full, tdxSynthTime)
	if err != nil {
		t.Fatal(err)
	}
	if v.ReportData != rd {
		t.Errorf("ReportData %s, want %s", v.ReportData, rd)
	}
}

// What a guest's quote service returns is checked before it becomes
// evidence.
func TestTDXEvidenceRefusesBadQuotes(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name  string
		quote func(rd [64]byte) ([]byte, error)
		want  string
	}{
		{"service error", func([64]byte) ([]byte, error) { return nil, errors.New("QGS unreachable") }, "QGS unreachable"},
		{"not a quote", func([64]byte) ([]byte, error) { return make([]byte, 1184), nil }, "no valid TDX quote: version 0, want 4"},
		{"another report data", func([64]byte) ([]byte, error) { return realTDXQuote(t), nil }, "the guest returned a quote of report data 6c62dec1b8191749…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plat := &TDX{quotes: &fakeTDXQuotes{t: t, p: p, quote: tc.quote}}
			_, err := plat.Evidence(ReportData{1})
			if !errors.Is(err, ErrTDXQuote) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Evidence = %v, want ErrTDXQuote: …%s", err, tc.want)
			}
		})
	}
}

func TestTDXCannotSeal(t *testing.T) {
	plat := &TDX{}
	if _, err := plat.Seal([]byte("secret")); !errors.Is(err, ErrTDXSealing) {
		t.Errorf("Seal = %v, want ErrTDXSealing", err)
	}
	if _, err := plat.Unseal([]byte("blob")); !errors.Is(err, ErrTDXSealing) {
		t.Errorf("Unseal = %v, want ErrTDXSealing", err)
	}
}

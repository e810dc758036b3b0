package attest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

var testCodeID = strings.Repeat("ab", 32)

func TestNewVirtualCodeID(t *testing.T) {
	v, err := NewVirtual(strings.ToUpper(testCodeID))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Measurement()
	if err != nil || m.String() != testCodeID {
		t.Fatalf("Measurement = %s, %v; want %s", m, err, testCodeID)
	}
	m[0] ^= 1 // the caller's copy
	if m2, _ := v.Measurement(); m2.String() != testCodeID {
		t.Fatal("Measurement returned the platform's own slice")
	}
	for _, bad := range []string{"ab", testCodeID + "ab", "zz" + testCodeID[2:], "coco-dev"} {
		if _, err := NewVirtual(bad); !errors.Is(err, ErrCodeID) {
			t.Errorf("NewVirtual(%q) = %v, want ErrCodeID", bad, err)
		}
		if _, err := New("virtual", WithVirtualCodeID(bad)); !errors.Is(err, ErrCodeID) {
			t.Errorf("New(virtual, %q) = %v, want ErrCodeID", bad, err)
		}
	}
	p, err := New("", WithVirtualCodeID(testCodeID))
	if err != nil || p.Name() != PlatformVirtual {
		t.Fatalf("New(\"\") = %v, %v", p, err)
	}
}

func TestVirtualDefaultMeasurementIsExecutableHash(t *testing.T) {
	path, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	m, err := Virtual{}.Measurement()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, h.Sum(nil)) {
		t.Fatalf("default measurement %s, want sha256 of %s", m, path)
	}
}

func TestVirtualEvidenceRoundTrip(t *testing.T) {
	p, err := New("virtual", WithVirtualCodeID(testCodeID))
	if err != nil {
		t.Fatal(err)
	}
	var rd ReportData
	for i := range rd {
		rd[i] = byte(i)
	}
	b, err := p.Evidence(rd)
	if err != nil {
		t.Fatal(err)
	}
	if b.Platform != PlatformVirtual || len(b.Endorsements) != 0 {
		t.Fatalf("bundle %+v", b)
	}
	// Through the wire format and the registry, as a joining node's bundle.
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := UnmarshalBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewVerifier(PlatformVirtual)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Verify(b2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v.Platform != PlatformVirtual || v.Measurement.String() != testCodeID || v.ReportData != rd || v.Secure || v.TCB != "" {
		t.Fatalf("verified %+v", v)
	}
	// Verified does not alias the bundle.
	for i := range b2.Evidence {
		b2.Evidence[i] = 0
	}
	if v.Measurement.String() != testCodeID {
		t.Fatal("Verified.Measurement aliases the bundle")
	}
	// The default platform's evidence verifies too.
	b3, err := Virtual{}.Evidence(rd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Verify(b3, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// virtualEvidence hand-builds evidence: {1: bstr m, 2: bstr rd}.
func virtualEvidence(mLen, rdLen int) []byte {
	ev, err := detEnc.Marshal(virtualEvidenceWire{Measurement: make([]byte, mLen), ReportData: make([]byte, rdLen)})
	if err != nil {
		panic(err)
	}
	return ev
}

func TestVirtualVerifierRefuses(t *testing.T) {
	good := virtualEvidence(32, 64)
	if _, err := (VirtualVerifier{}).Verify(&Bundle{Platform: "virtual", Evidence: good}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	cases := map[string]*Bundle{
		"other platform":      {Platform: "tdx", Evidence: good},
		"endorsements":        {Platform: "virtual", Evidence: good, Endorsements: [][]byte{{1}}},
		"short measurement":   {Platform: "virtual", Evidence: virtualEvidence(31, 64)},
		"long measurement":    {Platform: "virtual", Evidence: virtualEvidence(48, 64)},
		"short report data":   {Platform: "virtual", Evidence: virtualEvidence(32, 32)},
		"trailing byte":       {Platform: "virtual", Evidence: append(append([]byte(nil), good...), 0)},
		"unsorted keys":       {Platform: "virtual", Evidence: append(append([]byte{0xa2}, good[36:]...), good[1:36]...)},
		"unknown key":         {Platform: "virtual", Evidence: append(append([]byte{0xa3}, good[1:]...), 0x03, 0x00)},
		"missing report data": {Platform: "virtual", Evidence: append([]byte{0xa1}, good[1:36]...)},
		"not cbor":            {Platform: "virtual", Evidence: []byte("hello")},
	}
	for name, b := range cases {
		if _, err := (VirtualVerifier{}).Verify(b, time.Time{}); !errors.Is(err, ErrEvidence) {
			t.Errorf("%s: Verify = %v, want ErrEvidence", name, err)
		}
	}
	if _, err := (VirtualVerifier{}).Verify(nil, time.Time{}); !errors.Is(err, ErrBundle) {
		t.Errorf("nil bundle: %v", err)
	}
}

func FuzzVirtualEvidence(f *testing.F) {
	f.Add(virtualEvidence(32, 64))
	f.Add(virtualEvidence(31, 64))
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ev []byte) {
		v, err := (VirtualVerifier{}).Verify(&Bundle{Platform: PlatformVirtual, Evidence: ev}, time.Time{})
		if err != nil {
			if !errors.Is(err, ErrEvidence) {
				t.Fatalf("error %v does not wrap ErrEvidence", err)
			}
			return
		}
		if v.Secure || v.Platform != PlatformVirtual || len(v.Measurement) != VirtualMeasurementSize || v.TCB != "" {
			t.Fatalf("verified %+v", v)
		}
		// Accepted evidence is exactly what the platform would produce.
		want, err := detEnc.Marshal(virtualEvidenceWire{Measurement: v.Measurement, ReportData: v.ReportData[:]})
		if err != nil || !bytes.Equal(want, ev) {
			t.Fatalf("accepted %x, canonical form %x (%v)", ev, want, err)
		}
		b, err := Virtual{codeID: v.Measurement}.Evidence(v.ReportData)
		if err != nil || !bytes.Equal(b.Evidence, ev) {
			t.Fatalf("Evidence = %x, %v; want %x", b.Evidence, err, ev)
		}
	})
}

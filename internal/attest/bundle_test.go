package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// goldenBundleHex is {0: 1, 1: "virtual", 2: h'01', 3: []}, as shown in
// docs/attestation.md.
const goldenBundleHex = "a4" + "0001" + "01677669727475616c" + "024101" + "0380"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleGoldenEncoding(t *testing.T) {
	b := &Bundle{Platform: "virtual", Evidence: []byte{1}}
	got, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, goldenBundleHex); !bytes.Equal(got, want) {
		t.Fatalf("Marshal = %x, want %x", got, want)
	}
	// nil and empty endorsements encode the same way.
	b.Endorsements = [][]byte{}
	if got2, _ := b.Marshal(); !bytes.Equal(got, got2) {
		t.Fatalf("empty endorsements encode as %x, nil as %x", got2, got)
	}
}

func TestBundleRoundTrip(t *testing.T) {
	for _, b := range []*Bundle{
		{Platform: "virtual", Evidence: []byte{0}},
		{Platform: "sev-snp", Evidence: bytes.Repeat([]byte{7}, 1184), Endorsements: [][]byte{{1}, {2, 3}, bytes.Repeat([]byte{4}, 3000)}},
		{Platform: "tdx", Evidence: []byte("quote"), Endorsements: make16()},
		{Platform: strings.Repeat("a", MaxPlatformNameLen), Evidence: []byte{1}},
	} {
		enc, err := b.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%s): %v", b.Platform, err)
		}
		got, err := UnmarshalBundle(enc)
		if err != nil {
			t.Fatalf("UnmarshalBundle(%s): %v", b.Platform, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip: got %+v, want %+v", got, b)
		}
		// The result does not alias the input.
		for i := range enc {
			enc[i] ^= 0xff
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("decoded bundle aliases its input")
		}
	}
}

func make16() [][]byte {
	e := make([][]byte, MaxEndorsements)
	for i := range e {
		e[i] = []byte{byte(i)}
	}
	return e
}

func TestBundleMarshalRefuses(t *testing.T) {
	for name, b := range map[string]*Bundle{
		"empty platform":      {Evidence: []byte{1}},
		"upper-case platform": {Platform: "Virtual", Evidence: []byte{1}},
		"leading dash":        {Platform: "-x", Evidence: []byte{1}},
		"long platform":       {Platform: strings.Repeat("a", MaxPlatformNameLen+1), Evidence: []byte{1}},
		"empty evidence":      {Platform: "virtual"},
		"empty endorsement":   {Platform: "virtual", Evidence: []byte{1}, Endorsements: [][]byte{{1}, {}}},
		"17 endorsements":     {Platform: "virtual", Evidence: []byte{1}, Endorsements: append(make16(), []byte{1})},
		"oversize":            {Platform: "virtual", Evidence: make([]byte, MaxBundleSize)},
	} {
		if _, err := b.Marshal(); !errors.Is(err, ErrBundle) {
			t.Errorf("%s: Marshal = %v, want ErrBundle", name, err)
		}
	}
}

// TestUnmarshalBundleStrict feeds encodings a lax decoder would accept (or
// that are simply wrong) and expects every one refused.
func TestUnmarshalBundleStrict(t *testing.T) {
	const (
		ver  = "0001"
		plat = "01677669727475616c"
		ev   = "024101"
		end  = "0380"
	)
	cases := map[string]string{
		"empty":                   "",
		"not a map":               "80",
		"unsorted keys":           "a4" + plat + ver + ev + end,
		"non-minimal version":     "a4" + "001801" + plat + ev + end,
		"non-minimal key":         "a4" + "180001" + plat + ev + end,
		"non-minimal length":      "a4" + ver + "01780776 69727475616c" + ev + end,
		"non-minimal map length":  "b804" + ver + plat + ev + end,
		"missing endorsements":    "a3" + ver + plat + ev,
		"null endorsements":       "a4" + ver + plat + ev + "03f6",
		"missing evidence":        "a3" + ver + plat + end,
		"missing platform":        "a3" + ver + ev + end,
		"unknown key":             "a5" + ver + plat + ev + end + "0400",
		"duplicate key":           "a5" + ver + ver + plat + ev + end,
		"tagged evidence":         "a4" + ver + plat + "02d8404101" + end,
		"indefinite evidence":     "a4" + ver + plat + "025f4101ff" + end,
		"indefinite map":          "bf" + ver + plat + ev + end + "ff",
		"text evidence":           "a4" + ver + plat + "026101" + end,
		"bytes platform":          "a4" + ver + "01477669727475616c" + ev + end,
		"invalid utf-8 platform":  "a4" + ver + "0162ffff" + ev + end,
		"upper-case platform":     "a4" + ver + "01675669727475616c" + ev + end,
		"empty evidence":          "a4" + ver + plat + "0240" + end,
		"empty endorsement":       "a4" + ver + plat + ev + "038140",
		"trailing byte":           goldenBundleHex + "00",
		"two bundles":             goldenBundleHex + goldenBundleHex,
		"negative version":        "a4" + "0020" + plat + ev + end,
		"17 endorsements":         "a4" + ver + plat + ev + "0391" + strings.Repeat("4101", 17),
		"endorsement not a bstr":  "a4" + ver + plat + ev + "038101",
		"version as text":         "a4" + "006131" + plat + ev + end,
		"float key":               "a4" + "f90000" + "01" + plat + ev + end,
		"truncated":               goldenBundleHex[:len(goldenBundleHex)-2],
		"nested too deep":         "a4" + ver + plat + ev + "038181" + "4101",
		"map with 17 pairs (cap)": "b1" + strings.Repeat("0001", 17),
	}
	for name, h := range cases {
		_, err := UnmarshalBundle(mustHex(t, h))
		if !errors.Is(err, ErrBundle) {
			t.Errorf("%s: UnmarshalBundle = %v, want ErrBundle", name, err)
		}
	}
	for _, v := range []string{"0002", "0000", "001864"} {
		_, err := UnmarshalBundle(mustHex(t, "a4"+v+plat+ev+end))
		if !errors.Is(err, ErrBundle) || !errors.Is(err, ErrBundleVersion) {
			t.Errorf("version %s: UnmarshalBundle = %v, want ErrBundle and ErrBundleVersion", v, err)
		}
	}
	if _, err := UnmarshalBundle(make([]byte, MaxBundleSize+1)); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversize: UnmarshalBundle = %v", err)
	}
	if _, err := UnmarshalBundle(mustHex(t, goldenBundleHex)); err != nil {
		t.Fatalf("golden: %v", err)
	}
}

func TestReportDataForKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]any{"ecdsa": &ec.PublicKey, "ed25519": edPub} {
		rd, err := ReportDataForKey(pub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		h := sha256.Sum256(der)
		var want ReportData
		copy(want[:], h[:])
		if rd != want {
			t.Fatalf("%s: report data %s, want %s", name, rd, want)
		}
		if !bytes.Equal(rd[32:], make([]byte, 32)) {
			t.Fatalf("%s: second half not zero", name)
		}
	}
	for name, pub := range map[string]any{"nil": nil, "string": "not a key", "private key": ec} {
		if _, err := ReportDataForKey(pub); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: ReportDataForKey = %v, want ErrPublicKey", name, err)
		}
	}
}

func FuzzUnmarshalBundle(f *testing.F) {
	f.Add(mustHex(f, goldenBundleHex))
	f.Add(mustHex(f, "a4"+"0001"+"01677669727475616c"+"024101"+"038241014102"))
	if b, err := (Virtual{codeID: make([]byte, 32)}).Evidence(ReportData{1, 2, 3}); err == nil {
		enc, _ := b.Marshal()
		f.Add(enc)
	}
	f.Add([]byte{0xa4, 0x00, 0x01})
	f.Add([]byte{})
	reg, err := NewVerifier()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBundle(data)
		if err != nil {
			if !errors.Is(err, ErrBundle) {
				t.Fatalf("error %v does not wrap ErrBundle", err)
			}
			return
		}
		enc, err := b.Marshal()
		if err != nil {
			t.Fatalf("decoded bundle does not re-encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("decode→encode not byte-identical:\n in %x\nout %x", data, enc)
		}
		b2, err := UnmarshalBundle(enc)
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("re-decode: %+v, %v; want %+v", b2, err, b)
		}
		// Whatever decodes must be safe to hand to the verifiers.
		if v, err := reg.Verify(b, time.Unix(0, 0)); err == nil {
			if v.Platform != b.Platform || v.Secure {
				t.Fatalf("verified %+v from %+v", v, b)
			}
		} else if !errors.Is(err, ErrEvidence) && !errors.Is(err, ErrUnknownPlatform) {
			t.Fatalf("Verify error %v wraps neither ErrEvidence nor ErrUnknownPlatform", err)
		}
	})
}

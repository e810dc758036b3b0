package detcbor

import (
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

type rec struct {
	A uint64   `cbor:"1,keyasint"`
	B []byte   `cbor:"2,keyasint"`
	C []string `cbor:"3,keyasint"`
}

func TestDeterministicAndStrict(t *testing.T) {
	enc := EncMode(true)
	dec := DecMode(Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	b, err := enc.Marshal(rec{A: 1})
	if err != nil {
		t.Fatal(err)
	}
	// {1: 1, 2: h'', 3: []}: nil containers as empty, keys in order.
	if want := []byte{0xa3, 0x01, 0x01, 0x02, 0x40, 0x03, 0x80}; string(b) != string(want) {
		t.Fatalf("encoding %x, want %x", b, want)
	}
	var r rec
	if err := dec.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"duplicate key":     {0xa2, 0x01, 0x01, 0x01, 0x02},
		"indefinite length": {0xbf, 0x01, 0x01, 0xff},
		"tag":               {0xc1, 0x01},
		"unknown field":     {0xa1, 0x09, 0x01},
		"too many elements": append([]byte{0xa1, 0x03, 0x91}, make17Strings()...),
	} {
		var r rec
		if err := dec.Unmarshal(bad, &r); err == nil {
			t.Errorf("%s: accepted %x", name, bad)
		}
	}
	var nilEnc []byte
	if nilEnc, err = EncMode(false).Marshal(rec{A: 1}); err != nil {
		t.Fatal(err)
	}
	if string(nilEnc) == string(b) {
		t.Fatal("nilAsEmpty has no effect")
	}
	var semErr *cbor.UnknownFieldError
	var r2 rec
	if err := dec.Unmarshal([]byte{0xa1, 0x09, 0x01}, &r2); !errors.As(err, &semErr) {
		t.Fatalf("unknown field: %v", err)
	}
}

// make17Strings is 17 empty text strings: one more than the limit.
func make17Strings() []byte {
	b := make([]byte, 17)
	for i := range b {
		b[i] = 0x60
	}
	return b
}

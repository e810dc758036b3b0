package ledger

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func goldenRecord() *SignatureRecord {
	r := &SignatureRecord{View: 2, Seqno: 16, TreeSize: 15, SignedRoot: []byte{0xd2}, NodeID: "n1", NodeCert: []byte{0x30}}
	for i := range r.Root {
		r.Root[i] = byte(i)
	}
	return r
}

// goldenRecordHex is the canonical encoding of goldenRecord, pinned by
// TestSignatureRecordGolden and docs/ledger-format.md.
const goldenRecordHex = "a8" + // map(8)
	"0001" + // 0: version 1
	"0102" + // 1: view 2
	"0210" + // 2: seqno 16
	"030f" + // 3: tree size 15
	"045820000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + // 4: root bstr(32)
	"0541d2" + // 5: signed root bstr(1)
	"06626e31" + // 6: node id tstr "n1"
	"074130" // 7: node cert bstr(1)

func TestSignatureRecordGolden(t *testing.T) {
	b, err := goldenRecord().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != goldenRecordHex {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, goldenRecordHex)
	}
}

func TestSignatureRecordRoundTrip(t *testing.T) {
	want := goldenRecord()
	want.SignedRoot = bytes.Repeat([]byte{7}, 300)
	want.NodeCert = bytes.Repeat([]byte{8}, 1000)
	want.View, want.Seqno, want.TreeSize = 1<<64-1, 1<<64-1, 1<<64-2
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSignatureRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.View != want.View || got.Seqno != want.Seqno || got.TreeSize != want.TreeSize || got.Root != want.Root ||
		!bytes.Equal(got.SignedRoot, want.SignedRoot) || got.NodeID != want.NodeID || !bytes.Equal(got.NodeCert, want.NodeCert) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
	clear(b) // the result must not alias the input
	if !bytes.Equal(got.SignedRoot, want.SignedRoot) || !bytes.Equal(got.NodeCert, want.NodeCert) {
		t.Fatal("decoded record aliases its input")
	}
}

func TestSignatureRecordMarshalRejects(t *testing.T) {
	for name, edit := range map[string]func(r *SignatureRecord){
		"view 0":            func(r *SignatureRecord) { r.View = 0 },
		"seqno 0":           func(r *SignatureRecord) { r.Seqno, r.TreeSize = 0, 0 },
		"tree size":         func(r *SignatureRecord) { r.TreeSize = 14 },
		"empty signed root": func(r *SignatureRecord) { r.SignedRoot = nil },
		"empty node id":     func(r *SignatureRecord) { r.NodeID = "" },
		"empty node cert":   func(r *SignatureRecord) { r.NodeCert = nil },
	} {
		r := goldenRecord()
		edit(r)
		if _, err := r.Marshal(); !errors.Is(err, ErrBadSignatureRecord) {
			t.Errorf("%s: %v; want ErrBadSignatureRecord", name, err)
		}
	}
}

// wireMap is goldenRecord as a generic map, for building invalid variants.
func wireMap() map[uint64]any {
	r := goldenRecord()
	return map[uint64]any{0: 1, 1: 2, 2: 16, 3: 15, 4: r.Root[:], 5: r.SignedRoot, 6: r.NodeID, 7: r.NodeCert}
}

func encodeMap(t *testing.T, m map[uint64]any) []byte {
	t.Helper()
	b, err := sigEnc.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalSignatureRecordRejects(t *testing.T) {
	golden, _ := hex.DecodeString(goldenRecordHex)
	withMap := func(edit func(m map[uint64]any)) []byte {
		m := wireMap()
		edit(m)
		return encodeMap(t, m)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"trailing byte":    append(bytes.Clone(golden), 0),
		"truncated":        golden[:len(golden)-1],
		"unknown key":      withMap(func(m map[uint64]any) { m[8] = 0 }),
		"missing key":      withMap(func(m map[uint64]any) { delete(m, 7) }),
		"version 2":        withMap(func(m map[uint64]any) { m[0] = 2 }),
		"version 0":        withMap(func(m map[uint64]any) { m[0] = 0 }),
		"root 31 bytes":    withMap(func(m map[uint64]any) { m[4] = make([]byte, 31) }),
		"root as text":     withMap(func(m map[uint64]any) { m[4] = string(make([]byte, 32)) }),
		"negative view":    withMap(func(m map[uint64]any) { m[1] = -1 }),
		"tree size":        withMap(func(m map[uint64]any) { m[3] = 3 }),
		"text key":         bytes.Replace(golden, []byte{0x07, 0x41}, []byte{0x61, '7', 0x41}, 1),
		"non-minimal int":  bytes.Replace(golden, []byte{0x01, 0x02}, []byte{0x01, 0x18, 0x02}, 1),
		"duplicate key":    slices.Concat([]byte{0xa9}, golden[1:], []byte{0x01, 0x02}),
		"indefinite map":   slices.Concat([]byte{0xbf}, golden[1:], []byte{0xff}),
		"tagged":           slices.Concat([]byte{0xd9, 0xd9, 0xf7}, golden),
		"array not map":    {0x82, 0x01, 0x02},
		"unsorted keys":    slices.Concat([]byte{0xa8}, golden[3:5], golden[1:3], golden[5:]),
		"invalid utf8 id":  bytes.Replace(golden, []byte{0x62, 'n', '1'}, []byte{0x62, 0xff, 0xfe}, 1),
		"garbage":          []byte("not cbor at all"),
		"null signed root": withMap(func(m map[uint64]any) { m[5] = nil }),
	}
	for name, b := range cases {
		if r, err := UnmarshalSignatureRecord(b); !errors.Is(err, ErrBadSignatureRecord) {
			t.Errorf("%s (%x): got %+v, %v; want ErrBadSignatureRecord", name, b, r, err)
		}
	}
	// The decoder really sees these as distinct variants of a valid record.
	if _, err := UnmarshalSignatureRecord(golden); err != nil {
		t.Fatalf("golden: %v", err)
	}
	var m map[uint64]any
	if err := cbor.Unmarshal(cases["unsorted keys"], &m); err != nil || len(m) != 8 {
		t.Fatalf("unsorted-keys case is not a valid 8-key map: %v", err)
	}
}

func FuzzUnmarshalSignatureRecord(f *testing.F) {
	golden, _ := hex.DecodeString(goldenRecordHex)
	f.Add(golden)
	big := goldenRecord()
	big.SignedRoot = bytes.Repeat([]byte{1}, 100)
	if b, err := big.Marshal(); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Add(append(bytes.Clone(golden), 0))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalSignatureRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadSignatureRecord) {
				t.Fatalf("error %v does not wrap ErrBadSignatureRecord", err)
			}
			return
		}
		// Exactly one encoding per record: the input.
		re, err := r.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("accepted %x but it re-encodes to %x (%v)", b, re, err)
		}
	})
}

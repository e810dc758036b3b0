package kv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func ws(maps ...MapWrites) *WriteSet { return &WriteSet{Maps: maps} }

func mw(name MapName, writes ...Write) MapWrites { return MapWrites{Name: name, Writes: writes} }

func wput(k, v string) Write { return Write{Key: []byte(k), Value: []byte(v)} }

func wdel(k string) Write { return Write{Key: []byte(k), Deleted: true} }

// TestEncodingGolden pins the version-1 wire format byte for byte: a change
// here breaks every existing ledger.
func TestEncodingGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   *WriteSet
		hex  string
	}{
		{"nil", nil, "0100"},
		{"empty", ws(), "0100"},
		{"one put", ws(mw("m", wput("k", "v"))), "01" + "01" + "016d" + "01" + "00016b0176"},
		{"delete and empty key and value", ws(mw("a", wput("", ""), wdel("x")), mw("public:b", wdel("y"))),
			"01" + "02" +
				"0161" + "02" + "000000" + "010178" +
				"087075626c69633a62" + "01" + "010179"},
		{"two-byte varint", ws(mw("m", wput("k", strings.Repeat("z", 200)))),
			"01" + "01" + "016d" + "01" + "00016b" + "c801" + hex.EncodeToString([]byte(strings.Repeat("z", 200)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hex.EncodeToString(tc.ws.AppendBinary(nil))
			if got != tc.hex {
				t.Fatalf("encoding %s, want %s", got, tc.hex)
			}
			checkRoundTrip(t, tc.ws)
		})
	}
}

func TestAppendBinaryAppends(t *testing.T) {
	w := ws(mw("m", wput("k", "v"), wdel("z")))
	dst := make([]byte, 3, 3+w.EncodedLen())
	copy(dst, "pre")
	var out []byte
	if allocs := testing.AllocsPerRun(100, func() { out = w.AppendBinary(dst) }); allocs != 0 {
		t.Errorf("AppendBinary allocated %v times with room in dst", allocs)
	}
	if !bytes.HasPrefix(out, []byte("pre")) || !bytes.Equal(out[3:], w.AppendBinary(nil)) {
		t.Errorf("AppendBinary = %x", out)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("n", MaxMapNameLen+1)
	for _, tc := range []struct {
		name   string
		hex    string
		want   error // besides ErrMalformed; nil: only that
		offset int
		msg    string
	}{
		{"empty input", "", nil, 0, "empty input"},
		{"unknown version", "0200", nil, 0, "unknown version 2"},
		{"trailing bytes", "010000", nil, 2, "1 trailing bytes"},
		{"truncated count", "0180", nil, 1, "truncated varint"},
		{"non-minimal count", "018000", nil, 1, "non-minimal varint"},
		{"varint overflow", "01ffffffffffffffffffff01", nil, 1, "overflows"},
		{"count beyond input", "0102016d01", nil, 1, "cannot hold"},
		{"huge count", "01ffffffffffffffff7f", nil, 1, "cannot hold"},
		{"empty map", "0101016d00000000", nil, 4, "has no writes"},
		{"empty map name", "01010001000000", ErrInvalidMapName, 2, "empty"},
		{"control char in name", "0101010a01000000", ErrInvalidMapName, 2, "control character"},
		{"name too long", "0101" + "8102" + hex.EncodeToString([]byte(long)) + "01000000", ErrInvalidMapName, 2, "257 bytes"},
		{"unsorted maps", "0102" + "016201000000" + "016101000000", nil, 8, `"a" follows "b"`},
		{"duplicate maps", "0102" + "016101000000" + "016101000000", nil, 8, `"a" follows "a"`},
		{"unsorted keys", "0101016d02" + "00016200" + "00016100", nil, 10, `key "a" follows "b"`},
		{"duplicate keys", "0101016d02" + "00016100" + "00016100", nil, 10, `key "a" follows "a"`},
		{"unknown op", "0101016d01" + "020000", nil, 5, "unknown op 0x02"},
		{"truncated key", "0101016d01" + "0005616263", nil, 7, "5 bytes declared, 3 remain"},
		{"non-minimal key length", "0101016d01" + "00810061", nil, 6, "key length: non-minimal varint"},
		{"key too long", "0101016d01" + "00818004", ErrKeyTooLarge, 6, "65537 bytes"},
		{"value too long", "0101016d01" + "0000" + "81808008", ErrValueTooLarge, 7, "16777217 bytes"},
		{"truncated write", "0101016d02" + "0001610161", nil, 10, "write 1: truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeWriteSet(b)
			var de *DecodeError
			if got != nil || !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
				t.Fatalf("DecodeWriteSet = %v, %v; want a *DecodeError", got, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want it to match %v", err, tc.want)
			}
			if de.Offset != tc.offset || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q at offset %d, want offset %d and %q", err, de.Offset, tc.offset, tc.msg)
			}
		})
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	enc := ws(mw("m", wput("k", "v"))).AppendBinary(nil)
	dec, err := DecodeWriteSet(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xee
	}
	if w := dec.Maps[0].Writes[0]; string(w.Key) != "k" || string(w.Value) != "v" || dec.Maps[0].Name != "m" {
		t.Fatalf("decoded write set changed with its input: %s", fmtWriteSet(dec))
	}
}

func TestValidateWriteSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   *WriteSet
		msg  string
	}{
		{"bad name", ws(mw("", wput("k", "v"))), "invalid map name"},
		{"unsorted maps", ws(mw("b", wput("k", "v")), mw("a", wput("k", "v"))), `"a" follows "b"`},
		{"empty map", ws(mw("a")), "no writes"},
		{"unsorted keys", ws(mw("a", wput("b", ""), wput("a", ""))), `key "a" follows "b"`},
		{"duplicate keys", ws(mw("a", wput("a", ""), wdel("a"))), `key "a" follows "a"`},
		{"delete with value", ws(mw("a", Write{Key: []byte("k"), Value: []byte("v"), Deleted: true})), "delete carries a value"},
		{"key too large", ws(mw("a", Write{Key: make([]byte, MaxKeyLen+1)})), "key too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ws.Validate()
			if !errors.Is(err, ErrInvalidWriteSet) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Validate = %v, want ErrInvalidWriteSet mentioning %q", err, tc.msg)
			}
		})
	}
}

// randomWriteSet draws a valid write set from a model transaction.
func randomWriteSet(r *rand.Rand, maxWrites int) *WriteSet {
	tx := &mTx{writes: map[MapName]map[string]mWrite{}}
	names := []MapName{"a", "b", "public:a", "public:z", "zz"}
	for range r.IntN(maxWrites + 1) {
		k := make([]byte, r.IntN(4))
		for i := range k {
			k[i] = byte(r.IntN(256))
		}
		m := names[r.IntN(len(names))]
		if r.IntN(3) == 0 {
			tx.put(m, k, nil, true)
		} else {
			tx.put(m, k, bytes.Repeat([]byte{'v'}, r.IntN(300)), false)
		}
	}
	return tx.writeSet()
}

func TestSplitMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		w := randomWriteSet(r, 12)
		pub, priv := w.Split()
		if err := pub.Validate(); err != nil {
			t.Fatalf("case %d: public half invalid: %v", i, err)
		}
		if err := priv.Validate(); err != nil {
			t.Fatalf("case %d: private half invalid: %v", i, err)
		}
		for _, m := range pub.Maps {
			if !m.Name.IsPublic() {
				t.Fatalf("case %d: private map %q in the public half", i, m.Name)
			}
		}
		for _, m := range priv.Maps {
			if m.Name.IsPublic() {
				t.Fatalf("case %d: public map %q in the private half", i, m.Name)
			}
		}
		if pub.Len()+priv.Len() != w.Len() {
			t.Fatalf("case %d: halves hold %d+%d writes, whole %d", i, pub.Len(), priv.Len(), w.Len())
		}
		for _, pair := range [][2]*WriteSet{{pub, priv}, {priv, pub}} {
			got, err := Merge(pair[0], pair[1])
			if err != nil {
				t.Fatalf("case %d: Merge: %v", i, err)
			}
			if !equalWriteSets(got, w) {
				t.Fatalf("case %d: Merge = %s, want %s", i, fmtWriteSet(got), fmtWriteSet(w))
			}
		}
	}
}

// TestMergeOracle merges random write sets that share maps and compares
// with a model that unions the writes and sorts.
func TestMergeOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		a, b := randomWriteSet(r, 6), randomWriteSet(r, 6)
		union := &mTx{writes: map[MapName]map[string]mWrite{}}
		overlap := false
		for _, x := range []*WriteSet{a, b} {
			for _, m := range x.Maps {
				for _, w := range m.Writes {
					if _, dup := union.writes[m.Name][string(w.Key)]; dup {
						overlap = true
					}
					union.put(m.Name, w.Key, w.Value, w.Deleted)
				}
			}
		}
		got, err := Merge(a, b)
		switch {
		case overlap && !errors.Is(err, ErrOverlap):
			t.Fatalf("case %d: Merge = %v, want ErrOverlap", i, err)
		case !overlap && err != nil:
			t.Fatalf("case %d: Merge: %v", i, err)
		case !overlap && !equalWriteSets(got, union.writeSet()):
			t.Fatalf("case %d: Merge = %s, want %s", i, fmtWriteSet(got), fmtWriteSet(union.writeSet()))
		}
	}
	if _, err := Merge(ws(mw("b", wput("k", ""))), ws(mw("", wput("k", "")))); !errors.Is(err, ErrInvalidWriteSet) {
		t.Errorf("Merge with an invalid input = %v, want ErrInvalidWriteSet", err)
	}
	if _, err := Merge(nil, ws(mw("a"))); !errors.Is(err, ErrInvalidWriteSet) {
		t.Errorf("Merge with an invalid second input = %v, want ErrInvalidWriteSet", err)
	}
	if got, err := Merge(nil, nil); err != nil || !got.Empty() {
		t.Errorf("Merge(nil, nil) = %v, %v", got, err)
	}
	var none *WriteSet
	if pub, priv := none.Split(); !pub.Empty() || !priv.Empty() || none.Len() != 0 {
		t.Errorf("nil write set: Split = %v, %v; Len = %d", pub, priv, none.Len())
	}
}

func FuzzDecodeWriteSet(f *testing.F) {
	r := rand.New(rand.NewPCG(8, 9))
	for range 6 {
		f.Add(randomWriteSet(r, 8).AppendBinary(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0x80, 0})
	f.Add([]byte{2, 0})
	f.Add([]byte{1, 1, 1, 'm', 1, 0, 1, 'k', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("garbage that is not a write set"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeWriteSet(b)
		if err != nil {
			if w != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeWriteSet = %v, %v", w, err)
			}
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("decoded an invalid write set: %v", err)
		}
		if re := w.AppendBinary(nil); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding %x differs from input %x", re, b)
		}
		if w.EncodedLen() != len(b) {
			t.Fatalf("EncodedLen = %d, input %d bytes", w.EncodedLen(), len(b))
		}
		// Decoded write sets are what replay applies.
		if err := NewStore().Apply(1, w); err != nil {
			t.Fatalf("Apply(decoded) = %v", err)
		}
	})
}

func TestWriteSetTouches(t *testing.T) {
	ws := &WriteSet{Maps: []MapWrites{
		{Name: "a", Writes: []Write{{Key: []byte("k"), Value: []byte("v")}}},
		{Name: "c", Writes: []Write{{Key: []byte("k"), Deleted: true}}},
	}}
	for m, want := range map[MapName]bool{"a": true, "b": false, "c": true, "d": false, "": false} {
		if got := ws.Touches(m); got != want {
			t.Errorf("Touches(%q) = %v, want %v", m, got, want)
		}
	}
	var none *WriteSet
	if none.Touches("a") {
		t.Error("a nil write set touches nothing")
	}
}

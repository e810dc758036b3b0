package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x1ed9e5)) }

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// genEntry returns the deterministic test entry for (seed, seqno, view): a
// signature one time in four, random public and optional private parts.
func genEntry(seed uint64, seqno ids.Seqno, view ids.View) *Entry {
	rng := rand.New(rand.NewPCG(seed, uint64(seqno)))
	e := &Entry{Kind: KindTx, View: view, Seqno: seqno}
	if rng.IntN(4) == 0 {
		e.Kind = KindSignature
	}
	if n := rng.IntN(120); n > 0 {
		e.Public = randBytes(rng, n)
	}
	if rng.IntN(2) == 0 {
		e.Private = randBytes(rng, 16+rng.IntN(100))
	}
	copy(e.CommitEvidenceDigest[:], randBytes(rng, 32))
	if rng.IntN(2) == 0 {
		copy(e.ClaimsDigest[:], randBytes(rng, 32))
	}
	return e
}

func entriesEqual(a, b *Entry) bool {
	return a.Kind == b.Kind && a.View == b.View && a.Seqno == b.Seqno &&
		bytes.Equal(a.Public, b.Public) && bytes.Equal(a.Private, b.Private) &&
		a.CommitEvidenceDigest == b.CommitEvidenceDigest && a.ClaimsDigest == b.ClaimsDigest
}

// goldenEntry is pinned by TestEntryGolden and docs/ledger-format.md.
func goldenEntry() *Entry {
	e := &Entry{Kind: KindTx, View: 2, Seqno: 15, Public: []byte("pub"), Private: []byte("priv")}
	for i := range 32 {
		e.CommitEvidenceDigest[i] = 0xce
		e.ClaimsDigest[i] = 0xc1
	}
	return e
}

const goldenEntryHex = "00000065" + // frame_len = 101
	"01" + "01" + // version, kind
	"0000000000000002" + "000000000000000f" + // view, seqno
	"00000003" + "707562" + // pub_len, "pub"
	"00000004" + "70726976" + // priv_len, "priv"
	"cececececececececececececececececececececececececececececececece" +
	"c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"

func TestEntryGolden(t *testing.T) {
	e := goldenEntry()
	prefix := hex.EncodeToString(e.AppendBinary(nil)[:len(goldenEntryHex)/2])
	if prefix != goldenEntryHex {
		t.Fatalf("encoding changed:\n got %s\nwant %s", prefix, goldenEntryHex)
	}
	enc := e.AppendBinary(nil)
	crc := crc32.Checksum(enc[:len(enc)-4], crc32.MakeTable(crc32.Castagnoli))
	if got := binary.BigEndian.Uint32(enc[len(enc)-4:]); got != crc {
		t.Fatalf("trailer %08x, want CRC-32C %08x", got, crc)
	}
	// Computed independently (Python, bitwise CRC-32C and hashlib) and pinned.
	const wantCRC, wantDigest = "170cbd10", "f96c432319f906f5f3862de531340dd40e56bfb2f73b0682b7505f66cc46f858"
	if got := hex.EncodeToString(enc[len(enc)-4:]); got != wantCRC {
		t.Errorf("crc32c = %s, want %s", got, wantCRC)
	}
	d := e.WriteSetDigest()
	if got := hex.EncodeToString(d[:]); got != wantDigest {
		t.Errorf("WriteSetDigest = %s, want %s", got, wantDigest)
	}
}

// TestEntryLayout checks each derived value against the byte ranges the
// format document gives for it.
func TestEntryLayout(t *testing.T) {
	for seqno := range ids.Seqno(20) {
		e := genEntry(1, seqno+1, 3)
		enc := e.AppendBinary([]byte("prefix"))[len("prefix"):]
		if len(enc) != e.EncodedSize() {
			t.Fatalf("len %d, EncodedSize %d", len(enc), e.EncodedSize())
		}
		if fl := binary.BigEndian.Uint32(enc); int(fl) != len(enc)-4 {
			t.Fatalf("frame_len %d, want %d", fl, len(enc)-4)
		}
		bodyEnd := len(enc) - trailerSize
		if got, want := e.WriteSetDigest(), sha256.Sum256(enc[4:bodyEnd]); got != want {
			t.Fatalf("WriteSetDigest is not SHA-256 of the body")
		}
		privLenAt := offPublic + len(e.Public)
		var aad []byte
		aad = append(aad, enc[4:privLenAt]...)        // version … public
		aad = append(aad, enc[bodyEnd:len(enc)-4]...) // both digests
		if got := e.AppendAAD(nil); !bytes.Equal(got, aad) {
			t.Fatalf("AAD = %x, want %x", got, aad)
		}
		leaf := e.Leaf()
		wsd := e.WriteSetDigest()
		if !bytes.Equal(leaf[:32], wsd[:]) || !bytes.Equal(leaf[32:64], e.CommitEvidenceDigest[:]) || !bytes.Equal(leaf[64:], e.ClaimsDigest[:]) {
			t.Fatal("Leaf is not WriteSetDigest ‖ CommitEvidenceDigest ‖ ClaimsDigest")
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	cases := []*Entry{
		{Kind: KindTx, View: 1, Seqno: 1},
		{Kind: KindSignature, View: 1<<64 - 1, Seqno: 1<<64 - 1, Public: []byte{0}},
		{Kind: KindTx, View: 7, Seqno: 9, Private: bytes.Repeat([]byte{0xaa}, 70000)},
		goldenEntry(),
	}
	for i := range 50 {
		cases = append(cases, genEntry(2, ids.Seqno(i+1), ids.View(i/10+1)))
	}
	var stream []byte
	for _, e := range cases {
		enc := e.AppendBinary(nil)
		got, n, err := DecodeEntry(enc)
		if err != nil || n != len(enc) || !entriesEqual(&got, e) {
			t.Fatalf("round trip of %+v: %+v, %d, %v", e, got, n, err)
		}
		stream = e.AppendBinary(stream)
	}
	// Entries are self-delimiting: a concatenation decodes one by one.
	for i, want := range cases {
		got, n, err := DecodeEntry(stream)
		if err != nil || !entriesEqual(&got, want) {
			t.Fatalf("entry %d in stream: %v", i, err)
		}
		stream = stream[n:]
	}
	if len(stream) != 0 {
		t.Fatalf("%d bytes left over", len(stream))
	}
}

func TestDecodeDetectsEveryByteChange(t *testing.T) {
	for _, e := range []*Entry{goldenEntry(), genEntry(3, 4, 5), {Kind: KindSignature, View: 1, Seqno: 1}} {
		enc := e.AppendBinary(nil)
		for i := range enc {
			for x := 1; x < 256; x++ {
				b := bytes.Clone(enc)
				b[i] ^= byte(x)
				if got, _, err := DecodeEntry(b); err == nil {
					t.Fatalf("byte %d ^ %#x not detected: decoded %+v", i, x, got)
				}
			}
		}
	}
}

func TestDecodeEveryPrefixIsTruncated(t *testing.T) {
	enc := genEntry(4, 1, 1).AppendBinary(nil)
	for n := range len(enc) {
		if _, _, err := DecodeEntry(enc[:n]); !errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix of %d/%d bytes: %v; want ErrTruncated only", n, len(enc), err)
		}
	}
}

func TestDecodeZerosIsCorrupt(t *testing.T) {
	for _, n := range []int{4, 5, 97, 98, 99, 4096} {
		if _, _, err := DecodeEntry(make([]byte, n)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d zero bytes: %v; want ErrCorrupt", n, err)
		}
	}
	// A garbage length is judged before the data is needed.
	huge := binary.BigEndian.AppendUint32(nil, MaxEntrySize)
	if _, _, err := DecodeEntry(huge); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("frame length %d: %v; want ErrCorrupt", MaxEntrySize, err)
	}
}

// TestDecodeRejectsWellChecksummedNonsense feeds frames whose checksum is
// right but whose fields are not, as a buggy or foreign encoder would write.
func TestDecodeRejectsWellChecksummedNonsense(t *testing.T) {
	reseal := func(b []byte) []byte {
		n := len(b)
		binary.BigEndian.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], castagnoli))
		return b
	}
	base := goldenEntry().AppendBinary(nil)
	edits := map[string]func(b []byte){
		"version 2": func(b []byte) { b[offVersion] = 2 },
		"kind 0":    func(b []byte) { b[offKind] = 0 },
		"kind 3 (raft) with a private part and digests": func(b []byte) { b[offKind] = 3 },
		"kind 4":           func(b []byte) { b[offKind] = 4 },
		"view 0":           func(b []byte) { clear(b[offView : offView+8]) },
		"seqno 0":          func(b []byte) { clear(b[offSeqno : offSeqno+8]) },
		"pub_len too big":  func(b []byte) { binary.BigEndian.PutUint32(b[offPubLen:], 1000) },
		"pub_len +1":       func(b []byte) { binary.BigEndian.PutUint32(b[offPubLen:], 4) },
		"priv_len -1":      func(b []byte) { binary.BigEndian.PutUint32(b[offPublic+3:], 3) },
		"priv_len maximum": func(b []byte) { binary.BigEndian.PutUint32(b[offPublic+3:], 1<<32-1) },
	}
	for name, edit := range edits {
		b := bytes.Clone(base)
		edit(b)
		if _, _, err := DecodeEntry(reseal(b)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v; want ErrCorrupt", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Entry{Kind: KindTx, View: 1, Seqno: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]Entry{
		"kind":  {Kind: 9, View: 1, Seqno: 1},
		"view":  {Kind: KindTx, Seqno: 1},
		"seqno": {Kind: KindTx, View: 1},
		"size":  {Kind: KindTx, View: 1, Seqno: 1, Public: make([]byte, MaxEntrySize-MinEntrySize+1)},
	}
	for name, e := range bad {
		if err := e.Validate(); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: %v; want ErrInvalidEntry", name, err)
		}
	}
	max := Entry{Kind: KindTx, View: 1, Seqno: 1, Public: make([]byte, MaxEntrySize-MinEntrySize)}
	if err := max.Validate(); err != nil {
		t.Fatalf("entry of exactly MaxEntrySize: %v", err)
	}
	if _, n, err := DecodeEntry(max.AppendBinary(nil)); err != nil || n != MaxEntrySize {
		t.Fatalf("decode entry of exactly MaxEntrySize: %d, %v", n, err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindTx: "tx", KindSignature: "signature", KindRaft: "raft", 7: "Kind(7)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), want)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(goldenEntry().AppendBinary(nil))
	f.Add(genEntry(5, 1, 1).AppendBinary(genEntry(5, 2, 1).AppendBinary(nil)))
	f.Add((&Entry{Kind: KindSignature, View: 1, Seqno: 1}).AppendBinary(nil))
	f.Add(goldenRaftEntry().AppendBinary(nil))
	f.Add((&Entry{Kind: KindRaft, View: 2, Seqno: 9, Public: []byte{RaftConfChangeV2, 0x12, 0x04, 0x08, 0x00, 0x10, 0x01}}).AppendBinary(nil))
	f.Add((&Entry{Kind: KindRaft, View: 2, Seqno: 9, Public: []byte{RaftConfChangeV2}}).AppendBinary(nil))
	f.Add((&Entry{Kind: KindRaft, View: 2, Seqno: 9, Public: []byte{RaftEmpty}, ClaimsDigest: [32]byte{1}}).AppendBinary(nil))
	f.Add([]byte{})
	f.Add(make([]byte, 200))
	f.Add([]byte{0, 0, 0, 94, 1, 1})
	f.Add(bytes.Repeat([]byte{0xff}, 150))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := DecodeEntry(b)
		if err != nil {
			if n != 0 || !(errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorrupt)) {
				t.Fatalf("error %v with n=%d, not ErrTruncated/ErrCorrupt", err, n)
			}
			return
		}
		if n < MinEntrySize || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		// A decoded entry has exactly one encoding: the bytes it came from.
		if re := e.AppendBinary(nil); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b[:n], re)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded entry does not validate: %v", err)
		}
	})
}

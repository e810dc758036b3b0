package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// goldenRaftEntry is pinned by TestRaftEntryGolden and docs/ledger-format.md:
// the empty entry a leader of view 3 appends at seqno 7.
func goldenRaftEntry() *Entry {
	return &Entry{Kind: KindRaft, View: 3, Seqno: 7, Public: []byte{RaftEmpty}}
}

func TestRaftEntryGolden(t *testing.T) {
	// Computed independently (Python, bitwise CRC-32C and hashlib) and pinned.
	const (
		wantHex = "0000005f" + // frame_len = 95
			"01" + "03" + // version, kind = raft
			"0000000000000003" + "0000000000000007" + // view, seqno
			"00000001" + "00" + // pub_len, raft entry type 0 (empty)
			"00000000" + // priv_len
			"0000000000000000000000000000000000000000000000000000000000000000" +
			"0000000000000000000000000000000000000000000000000000000000000000" +
			"2df7f9f6" // crc32c
		wantDigest = "90d2309af699ab7cea553b6832b63ffe3d7dc764fb7610c30cc2050f3e28a2b9"
	)
	e := goldenRaftEntry()
	enc := e.AppendBinary(nil)
	if got := hex.EncodeToString(enc); got != wantHex {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, wantHex)
	}
	d := e.WriteSetDigest()
	if got := hex.EncodeToString(d[:]); got != wantDigest {
		t.Errorf("WriteSetDigest = %s, want %s", got, wantDigest)
	}
	leaf := e.Leaf()
	if !bytes.Equal(leaf[:32], d[:]) || [64]byte(leaf[32:]) != [64]byte{} {
		t.Errorf("leaf = %x, want WriteSetDigest ‖ 64 zero bytes", leaf)
	}
	got, n, err := DecodeEntry(enc)
	if err != nil || n != len(enc) || !entriesEqual(&got, e) {
		t.Fatalf("decode: %+v, %d, %v", got, n, err)
	}
}

func TestRaftEntryRules(t *testing.T) {
	good := []*Entry{
		goldenRaftEntry(),
		{Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftConfChangeV2}},
		{Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftConfChangeV2, 0x12, 0x04, 0x08, 0x00, 0x10, 0x01}},
	}
	for _, e := range good {
		if err := e.Validate(); err != nil {
			t.Errorf("Validate(%x): %v", e.Public, err)
		}
		got, _, err := DecodeEntry(e.AppendBinary(nil))
		if err != nil || !entriesEqual(&got, e) {
			t.Errorf("round trip of %x: %v", e.Public, err)
		}
	}
	bad := map[string]*Entry{
		"no type byte":       {Kind: KindRaft, View: 1, Seqno: 1},
		"type 1 (v1 change)": {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{1, 0x08}},
		"type 3":             {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{3}},
		"empty with data":    {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftEmpty, 0}},
		"private part":       {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftEmpty}, Private: []byte{1}},
		"ce digest":          {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftEmpty}, CommitEvidenceDigest: [32]byte{31: 1}},
		"claims digest":      {Kind: KindRaft, View: 1, Seqno: 1, Public: []byte{RaftConfChangeV2}, ClaimsDigest: [32]byte{0: 1}},
	}
	for name, e := range bad {
		if err := e.Validate(); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: Validate = %v; want ErrInvalidEntry", name, err)
		}
		// A foreign encoder could still write it, checksum and all.
		if _, _, err := DecodeEntry(e.AppendBinary(nil)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeEntry = %v; want ErrCorrupt", name, err)
		}
	}
	l, _ := mustOpen(t, vfs.NewMem(), 1<<10)
	defer mustClose(t, l)
	if err := l.Append(bad["private part"]); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("Append of an invalid raft entry: %v", err)
	}
}

// TestRaftEntriesInLedger checks that raft entries are stored, read back and
// recovered like any other, and that they never complete a chunk: only a
// signature does.
func TestRaftEntriesInLedger(t *testing.T) {
	fsys := vfs.NewMem()
	l, _ := mustOpen(t, fsys, 300)
	var want []*Entry
	for s := ids.Seqno(1); s <= 40; s++ {
		e := genEntry(11, s, ids.View(s/10+1))
		if s%3 == 0 {
			e = &Entry{Kind: KindRaft, View: e.View, Seqno: s, Public: []byte{RaftEmpty}}
			if s%2 == 0 {
				e.Public = []byte{RaftConfChangeV2, byte(s)}
			}
		}
		want = append(want, e)
	}
	mustAppend(t, l, want...)
	mustSync(t, l)
	checkContent(t, l, want)
	for _, c := range l.chunks[:len(l.chunks)-1] {
		e, err := l.Read(c.last())
		if err != nil || e.Kind != KindSignature {
			t.Fatalf("chunk %d ends on %v (%v), want a signature", c.first, e, err)
		}
	}
	mustClose(t, l)
	l, _ = mustOpen(t, fsys, 300)
	defer mustClose(t, l)
	checkContent(t, l, want)
}

func TestReadRange(t *testing.T) {
	fsys := vfs.NewMem()
	l, _ := mustOpen(t, fsys, 500)
	defer mustClose(t, l)
	want := gen(12, 1, 60, 1)
	mustAppend(t, l, want...)
	mustSync(t, l)
	if len(l.chunks) < 3 {
		t.Fatalf("%d files; the test wants several", len(l.chunks))
	}
	if err := l.SetCommitted(30); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]ids.Seqno{{1, 60}, {1, 1}, {60, 60}, {7, 43}, {31, 32}, {5, 4}} {
		next := r[0]
		err := l.ReadRange(r[0], r[1], func(e *Entry, enc []byte) error {
			if e.Seqno != next || !entriesEqual(e, want[next-1]) {
				t.Fatalf("range %v: got seqno %d, want %d", r, e.Seqno, next)
			}
			if !bytes.Equal(enc, want[next-1].AppendBinary(nil)) {
				t.Fatalf("range %v: enc of %d is not its encoding", r, next)
			}
			next++
			return nil
		})
		if err != nil || next != max(r[1]+1, r[0]) {
			t.Fatalf("range %v: stopped before %d: %v", r, next, err)
		}
	}
	for _, r := range [][2]ids.Seqno{{0, 3}, {59, 61}, {61, 61}} {
		if err := l.ReadRange(r[0], r[1], func(*Entry, []byte) error { t.Fatal("fn called"); return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("range %v: %v; want ErrNotFound", r, err)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := l.ReadRange(1, 60, func(*Entry, []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, calls)
	}
	// An entry's bytes are what was appended, byte for byte.
	var all []byte
	if err := l.ReadRange(1, 60, func(_ *Entry, enc []byte) error { all = append(all, enc...); return nil }); err != nil {
		t.Fatal(err)
	}
	var wantAll []byte
	for _, e := range want {
		wantAll = e.AppendBinary(wantAll)
	}
	if sha256.Sum256(all) != sha256.Sum256(wantAll) {
		t.Fatal("concatenated encodings differ from what was appended")
	}
}

package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

const dataDir = "/data"

var (
	quiet     = slog.New(slog.DiscardHandler)
	raftQuiet = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xc0c0)) }

func ledgerDir(data string) string { return filepath.Join(data, "ledger") }

// open opens the ledger (in data/ledger) and the Storage of a node.
func open(t testing.TB, fsys vfs.FS, data string, chunkSize int64) (*Storage, *ledger.Ledger) {
	t.Helper()
	l, _, err := ledger.Open(ledgerDir(data), ledger.Options{FS: fsys, ChunkSize: chunkSize, Logger: quiet})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	s, err := OpenStorage(fsys, data, l)
	if err != nil {
		t.Fatalf("OpenStorage: %v", err)
	}
	return s, l
}

func closeLedger(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("ledger.Close: %v", err)
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// txEntry returns the raft form of a ledger entry of kind at (term, index)
// with random content.
func txEntry(rng *rand.Rand, kind ledger.Kind, term, index uint64) raftpb.Entry {
	e := ledger.Entry{Kind: kind, View: ids.View(term), Seqno: ids.Seqno(index), Public: randBytes(rng, rng.IntN(200))}
	if kind == ledger.KindTx && rng.IntN(2) == 0 {
		e.Private = randBytes(rng, 16+rng.IntN(100))
	}
	copy(e.CommitEvidenceDigest[:], randBytes(rng, 32))
	return raftpb.Entry{Term: term, Index: index, Type: raftpb.EntryNormal, Data: e.AppendBinary(nil)}
}

// addVoter returns a configuration change entry adding voter id.
func addVoter(term, index, id uint64) raftpb.Entry {
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: id}}}
	data, err := cc.Marshal()
	if err != nil {
		panic(err)
	}
	return raftpb.Entry{Term: term, Index: index, Type: raftpb.EntryConfChangeV2, Data: data}
}

// randEntry returns a random raft entry of any kind Coco writes. A
// configuration change adds voter index, so any sequence of them applies.
func randEntry(rng *rand.Rand, term, index uint64) raftpb.Entry {
	switch rng.IntN(10) {
	case 0:
		return raftpb.Entry{Term: term, Index: index, Type: raftpb.EntryNormal}
	case 1:
		return addVoter(term, index, index)
	case 2, 3:
		return txEntry(rng, ledger.KindSignature, term, index)
	}
	return txEntry(rng, ledger.KindTx, term, index)
}

func randEntries(rng *rand.Rand, term, first uint64, n int) []raftpb.Entry {
	ents := make([]raftpb.Entry, n)
	for i := range ents {
		ents[i] = randEntry(rng, term, first+uint64(i))
	}
	return ents
}

func sameEntry(a, b raftpb.Entry) bool {
	return a.Term == b.Term && a.Index == b.Index && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

func describe(ents []raftpb.Entry) string {
	var b bytes.Buffer
	for _, e := range ents {
		fmt.Fprintf(&b, "%d@%d/%v/%dB ", e.Index, e.Term, e.Type, len(e.Data))
	}
	return b.String()
}

// sameErr says whether two Storage errors mean the same: both nil, or the
// same raft sentinel.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	for _, s := range []error{raft.ErrCompacted, raft.ErrUnavailable} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

// checkAgainst compares every raft.Storage answer of s with the oracle's.
func checkAgainst(t testing.TB, s *Storage, ms *raft.MemoryStorage, rng *rand.Rand) {
	t.Helper()
	last, _ := ms.LastIndex()
	if got, err := s.LastIndex(); got != last || err != nil {
		t.Fatalf("LastIndex = %d, %v; want %d", got, err, last)
	}
	first, _ := ms.FirstIndex()
	if got, err := s.FirstIndex(); got != first || err != nil {
		t.Fatalf("FirstIndex = %d, %v; want %d", got, err, first)
	}
	for i := uint64(0); i <= last+2; i++ {
		wt, werr := ms.Term(i)
		gt, gerr := s.Term(i)
		if gt != wt || !sameErr(gerr, werr) {
			t.Fatalf("Term(%d) = %d, %v; want %d, %v", i, gt, gerr, wt, werr)
		}
	}
	ranges := [][3]uint64{{1, last + 1, 1 << 62}, {0, last + 1, 1 << 62}, {1, last + 1, 0}, {last + 1, last + 1, 0}}
	for range 12 {
		lo := rng.Uint64N(last + 2)
		hi := lo + rng.Uint64N(last+2-lo)
		var maxSize uint64
		switch rng.IntN(3) {
		case 0:
			maxSize = rng.Uint64N(300)
		case 1:
			maxSize = rng.Uint64N(3000)
		default:
			maxSize = 1<<64 - 1
		}
		ranges = append(ranges, [3]uint64{lo, hi, maxSize})
	}
	for _, r := range ranges {
		want, werr := ms.Entries(r[0], r[1], r[2])
		got, gerr := s.Entries(r[0], r[1], r[2])
		if !sameErr(gerr, werr) || len(got) != len(want) {
			t.Fatalf("Entries(%d, %d, %d) = %d entries, %v; want %d, %v", r[0], r[1], r[2], len(got), gerr, len(want), werr)
		}
		for i := range want {
			if !sameEntry(got[i], want[i]) {
				t.Fatalf("Entries(%d, %d, %d)[%d] = %s; want %s", r[0], r[1], r[2], i, describe(got[i:i+1]), describe(want[i:i+1]))
			}
		}
	}
}

// savedState returns the HardState in the file of the Storage of data
// directory dir: what a restart finds (the empty HardState if no file).
func savedState(t testing.TB, fsys vfs.FS, dir string) raftpb.HardState {
	t.Helper()
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, StateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return raftpb.HardState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	hs, err := decodeHardState(b)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

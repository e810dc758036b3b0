package consensus

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

// TestStorageRecentMatchesLedger checks the in-memory window of recent
// entries against the ledger (its oracle) across appends, a truncation and
// the window's bound.
func TestStorageRecentMatchesLedger(t *testing.T) {
	rng := seeded(7)
	s, l := open(t, vfs.NewMem(), dataDir, 1<<20)
	defer closeLedger(t, l)
	check := func(when string) {
		t.Helper()
		last, _ := s.LastIndex()
		held := 0
		for i := uint64(1); i <= last; i++ {
			e := s.Recent(i)
			if e == nil {
				if held > 0 {
					t.Fatalf("%s: entry %d missing after a held one: the window is not contiguous", when, i)
				}
				continue
			}
			held++
			want, err := l.Read(ids.Seqno(i))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.AppendBinary(nil), want.AppendBinary(nil)) {
				t.Fatalf("%s: Recent(%d) differs from the ledger", when, i)
			}
		}
		if last > 0 && s.Recent(last) == nil {
			t.Fatalf("%s: the last entry %d is not held", when, last)
		}
		if s.Recent(last+1) != nil || s.Recent(0) != nil {
			t.Fatalf("%s: an entry outside the log is held", when)
		}
	}
	appendRange := func(term, from, to uint64) {
		t.Helper()
		var ents []raftpb.Entry
		for i := from; i <= to; i++ {
			ents = append(ents, txEntry(rng, ledger.KindTx, term, i))
		}
		if err := s.Append(ents); err != nil {
			t.Fatal(err)
		}
	}
	appendRange(1, 1, 100)
	check("after 100 entries")
	appendRange(2, 61, 120) // replaces 61…100
	check("after a truncation")
	for from := uint64(121); from < 3*recentEntries; from += 1000 {
		appendRange(2, from, from+999)
	}
	check("past the window's bound")
	if s.Recent(1) != nil {
		t.Fatal("the window kept the oldest entries")
	}
}

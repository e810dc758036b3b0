package consensus

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

// batch64 returns 64 transaction entries at term 2 from index first: 256
// public bytes, 128 private bytes each (a small write set).
func batch64(pub, priv []byte, first uint64) ([]raftpb.Entry, int64) {
	ents := make([]raftpb.Entry, 64)
	var size int64
	for i := range ents {
		e := ledger.Entry{Kind: ledger.KindTx, View: 2, Seqno: ids.Seqno(first + uint64(i)), Public: pub, Private: priv}
		ents[i] = raftpb.Entry{Term: 2, Index: first + uint64(i), Data: e.AppendBinary(nil)}
		size += int64(len(ents[i].Data))
	}
	return ents, size
}

func benchAppend64(b *testing.B, fsys vfs.FS, dir string) {
	s, l := open(b, fsys, dir, 0)
	defer l.Close()
	rng := seeded(1)
	pub, priv := randBytes(rng, 256), randBytes(rng, 128)
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ents, size := batch64(pub, priv, next)
		b.SetBytes(size)
		b.StartTimer()
		if err := s.Append(ents); err != nil {
			b.Fatal(err)
		}
		next += 64
	}
	b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppend64 persists Ready-sized batches of 64 entries on the real
// file system: decode, append, one fsync per batch.
func BenchmarkAppend64(b *testing.B) { benchAppend64(b, vfs.OS(), b.TempDir()) }

// BenchmarkAppend64Mem is the same without the disk: the CPU cost.
func BenchmarkAppend64Mem(b *testing.B) { benchAppend64(b, vfs.NewMem(), dataDir) }

// BenchmarkEntries64 reads back 64 entries, as raft does for a Ready's
// committed entries or a follower's catch-up.
func BenchmarkEntries64(b *testing.B) {
	s, l := open(b, vfs.OS(), b.TempDir(), 0)
	defer l.Close()
	rng := seeded(2)
	pub, priv := randBytes(rng, 256), randBytes(rng, 128)
	const batches = 200
	for i := range uint64(batches) {
		ents, _ := batch64(pub, priv, 1+64*i)
		if err := s.Append(ents); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		lo := 1 + 64*(i%batches)
		ents, err := s.Entries(lo, lo+64, 1<<30)
		if err != nil || len(ents) != 64 {
			b.Fatal(len(ents), err)
		}
		i++
	}
}

// BenchmarkTerm looks up terms in a log of 100,000 entries in 1,000 terms.
func BenchmarkTerm(b *testing.B) {
	s, l := open(b, vfs.NewMem(), dataDir, 0)
	defer l.Close()
	const n, perTerm = 100_000, 100
	ents := make([]raftpb.Entry, 0, 1000)
	for i := uint64(1); i <= n; i++ {
		ents = append(ents, raftpb.Entry{Term: 1 + (i-1)/perTerm, Index: i})
		if len(ents) == cap(ents) {
			if err := s.Append(ents); err != nil {
				b.Fatal(err)
			}
			ents = ents[:0]
		}
	}
	rng := seeded(3)
	idx := make([]uint64, 4096)
	for i := range idx {
		idx[i] = 1 + rng.Uint64N(n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x := idx[i%len(idx)]
		if t, err := s.Term(x); err != nil || t != 1+(x-1)/perTerm {
			b.Fatal(t, err)
		}
		i++
	}
}

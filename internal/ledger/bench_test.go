package ledger

import (
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

// benchEntry is an entry whose encoding is exactly 150 bytes.
func benchEntry(seqno ids.Seqno, kind Kind) *Entry {
	return &Entry{Kind: kind, View: 1, Seqno: seqno, Public: make([]byte, 150-MinEntrySize)}
}

func openBench(b *testing.B) *Ledger {
	b.Helper()
	l, _, err := Open(b.TempDir(), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// BenchmarkAppend measures the in-memory cost of Append (what the node pays
// under its commit lock) for 150-byte entries on a real directory.
func BenchmarkAppend(b *testing.B) {
	l := openBench(b)
	e := benchEntry(0, KindTx)
	b.SetBytes(int64(e.EncodedSize()))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Seqno = ids.Seqno(i + 1)
		if err := l.Append(e); err != nil {
			b.Fatal(err)
		}
		if i%65536 == 65535 {
			// Keep memory bounded; not part of the measured cost.
			b.StopTimer()
			if _, err := l.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}

// BenchmarkAppendSync measures group commit on a real directory: batches of
// 64 150-byte entries, the last a signature, one Sync (write + fsync) per
// batch. One op is one entry.
func BenchmarkAppendSync(b *testing.B) {
	const batch = 64
	l := openBench(b)
	e := benchEntry(0, KindTx)
	b.SetBytes(int64(e.EncodedSize()))
	var seqno ids.Seqno
	for b.Loop() {
		seqno++
		e.Seqno, e.Kind = seqno, KindTx
		if seqno%batch == 0 {
			e.Kind = KindSignature
		}
		if err := l.Append(e); err != nil {
			b.Fatal(err)
		}
		if seqno%batch == 0 {
			if _, err := l.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(seqno)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkDecodeEntry(b *testing.B) {
	enc := benchEntry(1, KindTx).AppendBinary(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeEntry(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead measures random reads of durable entries from tail files
// (page cache; one pread each).
func BenchmarkRead(b *testing.B) {
	const n = 10000
	l := openBench(b)
	for s := ids.Seqno(1); s <= n; s++ {
		if err := l.Append(benchEntry(s, KindTx)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	rng := seeded(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Read(1 + ids.Seqno(rng.IntN(n))); err != nil {
			b.Fatal(err)
		}
	}
}

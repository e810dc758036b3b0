package ledger

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

func TestAppendSyncRead(t *testing.T) {
	m := vfs.NewMem()
	l, rec := mustOpen(t, m, 1<<20)
	if *rec != (Recovery{}) {
		t.Fatalf("fresh Open recovery = %+v", rec)
	}
	es := gen(1, 1, 10, 1)
	mustAppend(t, l, es...)
	if l.LastSeqno() != 10 || l.DurableSeqno() != 0 {
		t.Fatalf("before Sync: last %d durable %d; want 10, 0", l.LastSeqno(), l.DurableSeqno())
	}
	if _, err := l.Read(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read before Sync = %v; want ErrNotFound", err)
	}
	if d := mustSync(t, l); d != 10 {
		t.Fatalf("Sync = %d; want 10", d)
	}
	for _, want := range es {
		got, err := l.Read(want.Seqno)
		if err != nil || !entriesEqual(got, want) {
			t.Fatalf("Read(%d) = %+v, %v", want.Seqno, got, err)
		}
	}
	for _, s := range []ids.Seqno{0, 11} {
		if _, err := l.Read(s); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read(%d) = %v; want ErrNotFound", s, err)
		}
	}
	var seen []ids.Seqno
	if err := l.Scan(5, func(e *Entry) error { seen = append(seen, e.Seqno); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[5 6 7 8 9 10]" {
		t.Fatalf("Scan(5) saw %v", seen)
	}
	n := 0
	if err := l.Scan(0, func(*Entry) error { n++; return errStop }); !errors.Is(err, errStop) || n != 1 {
		t.Fatalf("Scan with failing fn = %v after %d calls; want errStop after 1", err, n)
	}
	if d := mustSync(t, l); d != 10 {
		t.Fatalf("idle Sync = %d; want 10", d)
	}
	mustClose(t, l)
}

func TestAppendRejects(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMem(), 1<<20)
	defer mustClose(t, l)
	mustAppend(t, l, genEntry(1, 1, 5))
	cases := []struct {
		e    *Entry
		want error
	}{
		{genEntry(1, 3, 5), ErrOutOfOrder},
		{genEntry(1, 1, 5), ErrOutOfOrder},
		{genEntry(1, 2, 4), ErrOutOfOrder},
		{&Entry{Kind: 0, View: 5, Seqno: 2}, ErrInvalidEntry},
		{&Entry{Kind: KindTx, View: 0, Seqno: 2}, ErrInvalidEntry},
	}
	for _, c := range cases {
		if err := l.Append(c.e); !errors.Is(err, c.want) {
			t.Errorf("Append(seqno %d view %d kind %d) = %v; want %v", c.e.Seqno, c.e.View, c.e.Kind, err, c.want)
		}
	}
	if l.LastSeqno() != 1 {
		t.Fatalf("rejected appends changed LastSeqno to %d", l.LastSeqno())
	}
	mustAppend(t, l, genEntry(1, 2, 5), genEntry(1, 3, 6))
}

func TestChunkRotationAndCommit(t *testing.T) {
	const chunk = 1000
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, chunk)
	es := gen(7, 1, 200, 1)
	rng := seeded(7)
	for i, e := range es {
		mustAppend(t, l, e)
		if rng.IntN(5) == 0 || i == len(es)-1 {
			mustSync(t, l)
		}
	}
	want := expectFiles(es, chunk, 0)
	if len(want) < 4 {
		t.Fatalf("test stream makes only %d files; want several", len(want))
	}
	sameFiles(t, dirFiles(t, m), want)

	for _, c := range []ids.Seqno{100, 50, 1000} {
		if err := l.SetCommitted(c); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, dirFiles(t, m), expectFiles(es, chunk, max(c, 100)))
	}
	// Committed chunks are still readable (opened per read now).
	checkContent(t, l, es)
	mustClose(t, l)
}

// TestChunksIdenticalAcrossReplicas: chunk boundaries depend on the entries
// only, not on how appends were batched into Syncs or when commits came.
func TestChunksIdenticalAcrossReplicas(t *testing.T) {
	const chunk = 700
	es := gen(8, 1, 150, 1)
	var images []map[string]string
	for replica := range uint64(3) {
		m := vfs.NewMem()
		l, _ := mustOpen(t, m, chunk)
		rng := seeded(replica)
		for _, e := range es {
			mustAppend(t, l, e)
			if replica == 0 || rng.IntN(1+int(replica)*10) == 0 {
				d := mustSync(t, l)
				if rng.IntN(3) == 0 {
					if err := l.SetCommitted(d - ids.Seqno(rng.IntN(int(d)))); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		mustSync(t, l)
		if err := l.SetCommitted(150); err != nil {
			t.Fatal(err)
		}
		mustClose(t, l)
		images = append(images, dirFiles(t, m))
	}
	want := expectFiles(es, chunk, 150)
	for i, img := range images {
		t.Run(fmt.Sprint("replica", i), func(t *testing.T) { sameFiles(t, img, want) })
	}
}

func TestReopenContinues(t *testing.T) {
	const chunk = 900
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, chunk)
	es := gen(9, 1, 80, 2)
	mustAppend(t, l, es[:50]...)
	mustSync(t, l)
	if err := l.SetCommitted(30); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, es[50:55]...) // never synced: dropped by Close
	mustClose(t, l)

	l, rec := mustOpen(t, m, chunk)
	if *rec != (Recovery{LastSeqno: 50}) {
		t.Fatalf("Recovery = %+v; want only LastSeqno 50", rec)
	}
	if l.LastSeqno() != 50 {
		t.Fatalf("LastSeqno = %d", l.LastSeqno())
	}
	checkContent(t, l, es[:50])
	if err := l.Append(genEntry(9, 51, 1)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("append with a lower view after reopen = %v; want ErrOutOfOrder", err)
	}
	// A committed seqno survives reopen through the chunk names.
	if err := l.Truncate(10); !errors.Is(err, ErrCommittedTruncation) {
		t.Fatalf("Truncate into a committed chunk after reopen = %v", err)
	}
	mustAppend(t, l, es[50:]...)
	mustSync(t, l)
	checkContent(t, l, es)
	mustClose(t, l)
	sameFiles(t, dirFiles(t, m), expectFiles(es, chunk, committedThrough(es, chunk, 30)))
}

// committedThrough returns the last seqno of the last complete chunk ending
// at or before c: what SetCommitted(c) commits, for expectFiles.
func committedThrough(es []*Entry, chunkSize int64, c ids.Seqno) ids.Seqno {
	var size int64
	var out ids.Seqno
	for _, e := range es {
		size += int64(e.EncodedSize())
		if e.Kind == KindSignature && size >= chunkSize {
			size = 0
			if e.Seqno <= c {
				out = e.Seqno
			}
		}
	}
	return out
}

func TestTruncate(t *testing.T) {
	const chunk = 800
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, chunk)
	es := gen(10, 1, 120, 1)
	mustAppend(t, l, es...)
	mustSync(t, l)
	if err := l.SetCommitted(30); err != nil {
		t.Fatal(err)
	}
	committed := committedThrough(es, chunk, 30)
	if committed == 0 {
		t.Fatal("test stream commits no chunk by seqno 30")
	}
	if err := l.Truncate(20); !errors.Is(err, ErrCommittedTruncation) {
		t.Fatalf("Truncate(20) with 30 committed = %v", err)
	}

	// Truncating only entries not yet synced.
	mustAppend(t, l, gen(10, 121, 130, 1)...)
	if err := l.Truncate(125); err != nil {
		t.Fatal(err)
	}
	if l.LastSeqno() != 125 || l.DurableSeqno() != 120 {
		t.Fatalf("after pending truncate: last %d durable %d", l.LastSeqno(), l.DurableSeqno())
	}
	if err := l.Append(genEntry(11, 126, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(200); err != nil || l.LastSeqno() != 126 {
		t.Fatalf("Truncate beyond the end = %v, last %d; want a no-op", err, l.LastSeqno())
	}
	mustSync(t, l)

	// Truncating durable entries across chunk files.
	if err := l.Truncate(60); err != nil {
		t.Fatal(err)
	}
	if l.LastSeqno() != 60 || l.DurableSeqno() != 60 {
		t.Fatalf("after truncate: last %d durable %d", l.LastSeqno(), l.DurableSeqno())
	}
	if _, err := l.Read(61); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read(61) after Truncate(60) = %v", err)
	}
	if err := l.Append(genEntry(12, 61, 3)); err != nil {
		t.Fatal(err)
	}
	final := append(es[:60:60], gen(12, 61, 90, 3)...)
	mustAppend(t, l, final[61:]...)
	mustSync(t, l)
	checkContent(t, l, final)
	mustClose(t, l)

	// The files equal those of a ledger that only ever saw the final
	// entries: truncation leaves no trace.
	want := expectFiles(final, chunk, committed)
	sameFiles(t, dirFiles(t, m), want)
	l, _ = mustOpen(t, m, chunk)
	checkContent(t, l, final)
	mustClose(t, l)
}

func TestTruncateEverything(t *testing.T) {
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, 500)
	mustAppend(t, l, gen(13, 1, 40, 1)...)
	mustSync(t, l)
	if err := l.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if l.LastSeqno() != 0 || len(dirFiles(t, m)) != 0 {
		t.Fatalf("after Truncate(0): last %d, files %v", l.LastSeqno(), keys(dirFiles(t, m)))
	}
	es := gen(14, 1, 30, 2)
	mustAppend(t, l, es...)
	mustSync(t, l)
	mustClose(t, l)
	sameFiles(t, dirFiles(t, m), expectFiles(es, 500, 0))
}

// TestTruncatePendingTracksView: after dropping pending entries the next
// append is checked against the view of the new last entry.
func TestTruncatePendingTracksView(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMem(), 1<<20)
	defer mustClose(t, l)
	mustAppend(t, l, genEntry(1, 1, 1))
	mustSync(t, l)
	mustAppend(t, l, genEntry(1, 2, 2), genEntry(1, 3, 4), genEntry(1, 4, 4))
	if err := l.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(genEntry(1, 3, 1)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("view 1 after view 2 = %v; want ErrOutOfOrder", err)
	}
	mustAppend(t, l, genEntry(1, 3, 2))
	if err := l.Truncate(1); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, genEntry(2, 2, 1))
	mustSync(t, l)
	checkContent(t, l, []*Entry{genEntry(1, 1, 1), genEntry(2, 2, 1)})
}

func TestClose(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMem(), 1<<20)
	mustAppend(t, l, genEntry(1, 1, 1))
	mustSync(t, l)
	mustClose(t, l)
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	if err := l.Append(genEntry(1, 2, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if _, err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close = %v", err)
	}
	if _, err := l.Read(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if err := l.SetCommitted(1); !errors.Is(err, ErrClosed) {
		t.Errorf("SetCommitted after Close = %v", err)
	}
	if err := l.Truncate(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Truncate after Close = %v", err)
	}
}

func TestScanDirPositions(t *testing.T) {
	const chunk = 600
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, chunk)
	es := gen(15, 1, 60, 1)
	mustAppend(t, l, es...)
	mustSync(t, l)
	if err := l.SetCommitted(20); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)

	// Expected positions from the model: each file's entries back to back.
	var want []Position
	for name, data := range expectFiles(es, chunk, committedThrough(es, chunk, 20)) {
		for off := 0; off < len(data); {
			_, n, err := DecodeEntry([]byte(data[off:]))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, Position{File: filepath.Join(testDir, name), Offset: int64(off)})
			off += n
		}
	}
	got := map[Position]ids.Seqno{}
	var next ids.Seqno = 1
	err := ScanDir(m, testDir, func(pos Position, e *Entry) error {
		if !entriesEqual(e, es[next-1]) {
			t.Fatalf("ScanDir entry %d differs", next)
		}
		got[pos] = e.Seqno
		next++
		return nil
	})
	if err != nil || next != 61 {
		t.Fatalf("ScanDir: %v after %d entries", err, next-1)
	}
	for _, p := range want {
		if _, ok := got[p]; !ok {
			t.Errorf("position %+v not reported", p)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d positions reported, want %d", len(got), len(want))
	}
	if err := ScanDir(m, testDir, func(Position, *Entry) error { return errStop }); err != errStop {
		t.Fatalf("ScanDir with failing fn = %v; want errStop unchanged", err)
	}
	if err := ScanDir(m, "/nonexistent", func(Position, *Entry) error { return nil }); err == nil {
		t.Fatal("ScanDir of a missing directory succeeded")
	}
}

func TestOSLedger(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "ledger")
	opts := Options{ChunkSize: 2000, Logger: quiet}
	l, _, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	es := gen(16, 1, 100, 1)
	for i := 0; i < len(es); i += 10 {
		mustAppend(t, l, es[i:i+10]...)
		mustSync(t, l)
	}
	if err := l.SetCommitted(100); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	l, rec, err := Open(dir, opts)
	if err != nil || rec.LastSeqno != 100 {
		t.Fatalf("reopen: %+v, %v", rec, err)
	}
	checkContent(t, l, es)
	mustClose(t, l)
	n := 0
	if err := ScanDir(vfs.OS(), dir, func(Position, *Entry) error { n++; return nil }); err != nil || n != 100 {
		t.Fatalf("ScanDir: %d entries, %v", n, err)
	}
}

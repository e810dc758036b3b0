package ledger

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// positions returns every entry's position in a healthy ledger directory.
func positions(t *testing.T, fsys vfs.FS) map[ids.Seqno]Position {
	t.Helper()
	out := map[ids.Seqno]Position{}
	if err := ScanDir(fsys, testDir, func(p Position, e *Entry) error { out[e.Seqno] = p; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// flipByte returns a copy of fsys's ledger directory, as a fresh Mem, with
// one byte of one file inverted.
func flipByte(t *testing.T, files map[string]string, name string, off int64) *vfs.Mem {
	t.Helper()
	m := vfs.NewMem()
	for n, data := range files {
		b := []byte(data)
		if n == name {
			b[off] ^= 0xff
		}
		writeFile(t, m, n, b)
	}
	return m
}

// TestTornLastEntryEveryOffset cuts the last entry at every byte offset, and
// also replaces its tail with zeros (the size reached the disk, the data did
// not): Open drops exactly that entry and appending continues.
func TestTornLastEntryEveryOffset(t *testing.T) {
	src := vfs.NewMem()
	l, _ := mustOpen(t, src, 1<<20)
	es := gen(20, 1, 10, 1)
	mustAppend(t, l, es...)
	mustSync(t, l)
	mustClose(t, l)
	data := []byte(dirFiles(t, src)[tailName(1)])
	start := positions(t, src)[10].Offset
	path := filepath.Join(testDir, tailName(1))
	for cut := start + 1; cut < int64(len(data)); cut++ {
		for _, zeros := range []bool{false, true} {
			torn := bytes.Clone(data[:cut])
			if zeros {
				clear(torn[start:])
			}
			m := vfs.NewMem()
			writeFile(t, m, tailName(1), torn)

			ce := asCorrupt(t, ScanDir(m, testDir, func(Position, *Entry) error { return nil }))
			if ce.File != path || ce.Offset != start || ce.Seqno != 10 {
				t.Fatalf("cut %d zeros %v: ScanDir error %+v", cut, zeros, ce)
			}

			l, rec := mustOpen(t, m, 1<<20)
			want := Recovery{LastSeqno: 9, TruncatedFile: path, TruncatedAt: start, TruncatedBytes: cut - start, Reason: rec.Reason}
			if *rec != want || rec.Reason == "" {
				t.Fatalf("cut %d zeros %v: Recovery %+v; want %+v", cut, zeros, rec, want)
			}
			checkContent(t, l, es[:9])
			mustAppend(t, l, es[9])
			mustSync(t, l)
			mustClose(t, l)
			if got := dirFiles(t, m)[tailName(1)]; got != string(data) {
				t.Fatalf("cut %d zeros %v: after re-append the file differs from the original", cut, zeros)
			}
		}
	}
}

// twoCommittedAndTwoTails builds a ledger with (at least) two committed
// chunks and two tail files, and returns its files and entries.
func twoCommittedAndTwoTails(t *testing.T) (map[string]string, []*Entry, map[ids.Seqno]Position) {
	const chunk = 600
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, chunk)
	es := gen(21, 1, 120, 1)
	mustAppend(t, l, es...)
	mustSync(t, l)
	files := expectFiles(es, chunk, 0)
	if len(files) < 5 {
		t.Fatalf("only %d files", len(files))
	}
	// Commit all but the last two complete chunks.
	var sigs []ids.Seqno
	var size int64
	for _, e := range es {
		size += int64(e.EncodedSize())
		if e.Kind == KindSignature && size >= chunk {
			sigs, size = append(sigs, e.Seqno), 0
		}
	}
	if err := l.SetCommitted(sigs[len(sigs)-3]); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	return dirFiles(t, m), es, positions(t, m)
}

func TestDamageOutsideLastTailIsRefused(t *testing.T) {
	files, es, pos := twoCommittedAndTwoTails(t)
	// Classify each file by its role.
	var committed, tails []string
	for name := range files {
		if fn, _, _ := parseName(name); fn.committed {
			committed = append(committed, name)
		} else {
			tails = append(tails, name)
		}
	}
	if len(committed) < 2 || len(tails) < 2 {
		t.Fatalf("committed %v tails %v", committed, tails)
	}
	lastTail := tails[0]
	for _, n := range tails {
		if fn, _, _ := parseName(n); fn.first > mustParse(t, lastTail).first {
			lastTail = n
		}
	}
	for seqno := ids.Seqno(1); seqno <= ids.Seqno(len(es)); seqno += 7 {
		p := pos[seqno]
		name := filepath.Base(p.File)
		if name == lastTail {
			continue // see TestDamageInLastTailIsTruncated
		}
		for _, within := range []int64{0, 3, 30, int64(es[seqno-1].EncodedSize()) - 1} {
			m := flipByte(t, files, name, p.Offset+within)
			before := dirFiles(t, m)
			_, _, err := Open(testDir, memOpts(m, 600))
			ce := asCorrupt(t, err)
			if ce.File != p.File || ce.Offset != p.Offset || ce.Seqno != seqno {
				t.Fatalf("flip in %s at %d (seqno %d): Open error %+v", name, p.Offset+within, seqno, ce)
			}
			sameFiles(t, dirFiles(t, m), before) // refused: nothing repaired
			ce = asCorrupt(t, ScanDir(m, testDir, func(Position, *Entry) error { return nil }))
			if ce.File != p.File || ce.Offset != p.Offset || ce.Seqno != seqno {
				t.Fatalf("flip in %s at %d: ScanDir error %+v", name, p.Offset+within, ce)
			}
		}
	}
}

func mustParse(t *testing.T, name string) fileName {
	t.Helper()
	fn, ok, err := parseName(name)
	if !ok || err != nil {
		t.Fatalf("parseName(%q) = %v, %v", name, ok, err)
	}
	return fn
}

func TestDamageInLastTailIsTruncated(t *testing.T) {
	files, es, pos := twoCommittedAndTwoTails(t)
	last := filepath.Base(pos[ids.Seqno(len(es))].File)
	first := mustParse(t, last).first
	size := int64(len(files[last]))
	for seqno := first; seqno <= ids.Seqno(len(es)); seqno++ {
		p := pos[seqno]
		m := flipByte(t, files, last, p.Offset+5)
		ce := asCorrupt(t, ScanDir(m, testDir, func(Position, *Entry) error { return nil }))
		if ce.Offset != p.Offset || ce.Seqno != seqno {
			t.Fatalf("ScanDir: %+v", ce)
		}
		l, rec := mustOpen(t, m, 600)
		want := Recovery{LastSeqno: seqno - 1, TruncatedFile: p.File, TruncatedAt: p.Offset, TruncatedBytes: size - p.Offset, Reason: rec.Reason}
		if seqno == first {
			want.TruncatedAt = 0 // nothing valid left: the file is removed
		}
		if *rec != want {
			t.Fatalf("flip in seqno %d: Recovery %+v; want %+v", seqno, rec, want)
		}
		checkContent(t, l, es[:seqno-1])
		mustClose(t, l)
		if _, ok := dirFiles(t, m)[last]; ok == (seqno == first) {
			t.Fatalf("flip in seqno %d: last tail exists = %v", seqno, ok)
		}
	}
}

// TestDirectoryDamage covers damage to the set of files rather than to
// their bytes.
func TestDirectoryDamage(t *testing.T) {
	files, _, _ := twoCommittedAndTwoTails(t)
	var committed []string
	var tails []string
	for name := range files {
		if mustParse(t, name).committed {
			committed = append(committed, name)
		} else {
			tails = append(tails, name)
		}
	}
	firstCommitted := committedName(1, mustParse(t, firstOf(committed, 1)).last)
	tx := func(s ids.Seqno, v ids.View) *Entry { return &Entry{Kind: KindTx, View: v, Seqno: s} }
	sig := func(s ids.Seqno, v ids.View) *Entry { return &Entry{Kind: KindSignature, View: v, Seqno: s} }
	enc := func(es ...*Entry) string {
		var b []byte
		for _, e := range es {
			b = e.AppendBinary(b)
		}
		return string(b)
	}
	cases := map[string]struct {
		edit   func(fs map[string]string)
		reason string // substring of the CorruptError reason
	}{
		"gap":           {func(fs map[string]string) { delete(fs, firstOf(committed, 2)) }, "gap"},
		"missing first": {func(fs map[string]string) { delete(fs, firstCommitted) }, "gap"},
		"committed chunk name ends early": {func(fs map[string]string) {
			fn := mustParse(t, firstCommitted)
			fs[committedName(1, fn.last-1)] = fs[firstCommitted]
			delete(fs, firstCommitted)
		}, "ends at"},
		"overlapping names": {func(fs map[string]string) { fs[tailName(1)] = fs[firstCommitted] }, "overlaps"},
		"leading zero":      {func(fs map[string]string) { fs["ledger_01"] = "" }, "misnamed"},
		"not a number":      {func(fs map[string]string) { fs["ledger_x"] = "" }, "misnamed"},
		"reversed range":    {func(fs map[string]string) { fs["ledger_9-3.committed"] = "" }, "misnamed"},
		"seqno zero":        {func(fs map[string]string) { fs["ledger_0"] = "" }, "misnamed"},
		"no last":           {func(fs map[string]string) { fs["ledger_5.committed"] = "" }, "misnamed"},
		"temp suffix":       {func(fs map[string]string) { fs["ledger_5.tmp"] = "" }, "misnamed"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs := map[string]string{}
			for k, v := range files {
				fs[k] = v
			}
			c.edit(fs)
			m := vfs.NewMem()
			for k, v := range fs {
				writeFile(t, m, k, []byte(v))
			}
			_, _, err := Open(testDir, memOpts(m, 600))
			if ce := asCorrupt(t, err); !bytes.Contains([]byte(ce.Reason), []byte(c.reason)) {
				t.Fatalf("Open: reason %q; want it to mention %q", ce.Reason, c.reason)
			}
			if ce := asCorrupt(t, ScanDir(m, testDir, func(Position, *Entry) error { return nil })); !bytes.Contains([]byte(ce.Reason), []byte(c.reason)) {
				t.Fatalf("ScanDir: reason %q; want it to mention %q", ce.Reason, c.reason)
			}
		})
	}

	// Contents that no crash can produce are refused even in the last tail.
	contents := map[string]struct {
		files  map[string]string
		reason string
	}{
		"misnamed first entry":  {map[string]string{tailName(1): enc(tx(2, 1))}, "misnamed"},
		"seqno skips":           {map[string]string{tailName(1): enc(tx(1, 1), tx(3, 1))}, "seqno 3"},
		"view goes back":        {map[string]string{tailName(1): enc(tx(1, 2), tx(2, 1))}, "view goes back"},
		"tail not on signature": {map[string]string{tailName(1): enc(sig(1, 1), tx(2, 1)), tailName(3): enc(tx(3, 1))}, "not a signature"},
		"committed not on sig":  {map[string]string{committedName(1, 2): enc(sig(1, 1), tx(2, 1))}, "not a signature"},
		"empty committed chunk": {map[string]string{committedName(1, 2): ""}, "no entries"},
		"empty middle tail":     {map[string]string{tailName(1): "", tailName(2): enc(tx(2, 1))}, "no entries"},
		"ledger dir entry":      {map[string]string{"ledger_7/x": ""}, "directory"},
	}
	for name, c := range contents {
		t.Run(name, func(t *testing.T) {
			m := vfs.NewMem()
			for k, v := range c.files {
				if err := vfs.MkdirAllSync(m, filepath.Dir(filepath.Join(testDir, k)), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, m, k, []byte(v))
			}
			_, _, err := Open(testDir, memOpts(m, 1))
			if ce := asCorrupt(t, err); !bytes.Contains([]byte(ce.Reason), []byte(c.reason)) {
				t.Fatalf("Open: reason %q; want it to mention %q", ce.Reason, c.reason)
			}
		})
	}
}

// firstOf returns, among names, the file with the n-th lowest first seqno
// (1-based).
func firstOf(names []string, n int) string {
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, func(a, b string) int {
		fa, _, _ := parseName(a)
		fb, _, _ := parseName(b)
		return cmp.Compare(fa.first, fb.first)
	})
	return sorted[n-1]
}

func TestForeignFilesIgnoredAndEmptyTailRemoved(t *testing.T) {
	m := vfs.NewMem()
	l, _ := mustOpen(t, m, 1)
	es := gen(22, 1, 12, 1)
	es[11].Kind = KindSignature // chunk size 1: every signature ends a file
	mustAppend(t, l, es...)
	mustSync(t, l)
	mustClose(t, l)
	writeFile(t, m, "README", []byte("not a ledger file"))
	writeFile(t, m, tailName(13), nil) // crash between create and first write
	if err := ScanDir(m, testDir, func(Position, *Entry) error { return nil }); err != nil {
		t.Fatalf("ScanDir with an empty last tail and a foreign file: %v", err)
	}
	l, rec := mustOpen(t, m, 1)
	want := Recovery{LastSeqno: 12, TruncatedFile: filepath.Join(testDir, tailName(13)), Reason: "empty tail file"}
	if *rec != want {
		t.Fatalf("Recovery = %+v; want %+v", rec, want)
	}
	if _, ok := dirFiles(t, m)[tailName(13)]; ok {
		t.Fatal("empty tail file not removed")
	}
	mustAppend(t, l, genEntry(22, 13, 1))
	mustSync(t, l)
	mustClose(t, l)
	if _, ok := dirFiles(t, m)["README"]; !ok {
		t.Fatal("foreign file removed")
	}
}

// TestCrashRecovery runs random histories of appends, syncs, commits and
// truncations, crashes at a random point with torn writes, and checks that
// Open keeps every entry Sync reported durable, keeps nothing that was not
// appended, and that the ledger continues correctly.
func TestCrashRecovery(t *testing.T) {
	const chunk = 700
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	// How often each interesting outcome happened: each must, or the test
	// is not exercising what it claims to.
	var truncated, beyondDurable, lostUnsynced, multiFile int
	for seed := range uint64(iterations) {
		rng := seeded(seed)
		m := vfs.NewMem()
		l, _ := mustOpen(t, m, chunk)
		var want []*Entry // the ledger's entries as appended, durable or not
		var durable, committed ids.Seqno
		view := ids.View(1)
		for range 20 + rng.IntN(100) {
			switch r := rng.IntN(20); {
			case r < 14:
				e := genEntry(seed*1000+uint64(view), ids.Seqno(len(want)+1), view)
				mustAppend(t, l, e)
				want = append(want, e)
			case r < 18:
				durable = mustSync(t, l)
			case r < 19:
				if err := l.SetCommitted(durable); err != nil {
					t.Fatal(err)
				}
				committed = durable
			default:
				after := committed + ids.Seqno(rng.IntN(len(want)-int(committed)+1))
				if err := l.Truncate(after); err != nil {
					t.Fatalf("seed %d: Truncate(%d): %v", seed, after, err)
				}
				want = want[:after]
				durable = min(durable, after)
				view++
			}
		}
		// Crash inside an operation, not between two: an armed fault stops
		// it at a random write or sync, leaving written but unsynced data for
		// Crash to tear.
		if rng.IntN(4) != 0 {
			mustAppend(t, l, func() []*Entry {
				es := gen(seed*1000+uint64(view), ids.Seqno(len(want)+1), ids.Seqno(len(want)+1+rng.IntN(30)), view)
				want = append(want, es...)
				return es
			}()...)
			if rng.IntN(2) == 0 {
				m.FailSyncsAfter(rng.IntN(4), syscall.EIO)
			} else {
				m.FailWritesAfter(int64(rng.IntN(3000)), syscall.ENOSPC)
			}
			switch rng.IntN(4) {
			case 0:
				if err := l.SetCommitted(durable); err == nil {
					committed = durable
				}
			case 1:
				after := committed + ids.Seqno(rng.IntN(len(want)-int(committed)+1))
				if err := l.Truncate(after); err == nil {
					want = want[:after]
				}
				// Failed or not, entries after `after` are no longer
				// promised; the ones that remain are still the appended ones.
				durable = min(durable, after)
			default:
				if d, err := l.Sync(); err == nil {
					durable = d
				}
			}
		}
		crashed := m.Crash(rng)
		if err := ScanDir(crashed, testDir, func(Position, *Entry) error { return nil }); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("seed %d: ScanDir of crash image: %v", seed, err)
		}
		l2, rec, err := Open(testDir, memOpts(crashed, chunk))
		if err != nil {
			t.Fatalf("seed %d: Open after crash: %v", seed, err)
		}
		if rec.LastSeqno < durable || int(rec.LastSeqno) > len(want) {
			t.Fatalf("seed %d: recovered up to %d; durable was %d, appended %d", seed, rec.LastSeqno, durable, len(want))
		}
		checkContent(t, l2, want[:rec.LastSeqno])
		if rec.TruncatedFile != "" {
			truncated++
		}
		if rec.LastSeqno > durable {
			beyondDurable++
		}
		if int(rec.LastSeqno) < len(want) {
			lostUnsynced++
		}
		if len(dirFiles(t, crashed)) > 2 {
			multiFile++
		}
		// The recovered ledger is a healthy one: it continues and reopens.
		more := gen(seed+1, rec.LastSeqno+1, rec.LastSeqno+20, view)
		mustAppend(t, l2, more...)
		mustSync(t, l2)
		mustClose(t, l2)
		if err := ScanDir(crashed, testDir, func(Position, *Entry) error { return nil }); err != nil {
			t.Fatalf("seed %d: ScanDir after recovery: %v", seed, err)
		}
		l3, rec3 := mustOpen(t, crashed, chunk)
		if rec3.TruncatedFile != "" {
			t.Fatalf("seed %d: second recovery truncated %+v", seed, rec3)
		}
		checkContent(t, l3, append(want[:rec.LastSeqno:rec.LastSeqno], more...))
		mustClose(t, l3)
	}
	t.Logf("truncated %d, kept unsynced entries %d, lost unsynced entries %d, multi-file %d of %d",
		truncated, beyondDurable, lostUnsynced, multiFile, iterations)
	if truncated == 0 || beyondDurable == 0 || lostUnsynced == 0 || multiFile == 0 {
		t.Fatal("some crash outcome never happened; the test lost its power")
	}
}

// TestDiskErrors injects write and fsync failures at many points of a Sync
// that spans several chunk files. The failing Sync reports the cause; the
// ledger is then poisoned; reopening (with or without a crash) finds every
// entry that was durable before.
func TestDiskErrors(t *testing.T) {
	const chunk = 500
	es := gen(23, 1, 60, 1)
	var batchBytes int64
	for _, e := range es[20:] {
		batchBytes += int64(e.EncodedSize())
	}
	type fault struct {
		name   string
		arm    func(m *vfs.Mem)
		reason error
	}
	var faults []fault
	for _, n := range []int64{0, 1, 4, 97, 98, 150, 400, 777, batchBytes - 1} {
		faults = append(faults, fault{fmt.Sprint("write after ", n), func(m *vfs.Mem) { m.FailWritesAfter(n, syscall.ENOSPC) }, syscall.ENOSPC})
	}
	for n := range 6 {
		faults = append(faults, fault{fmt.Sprint("sync after ", n), func(m *vfs.Mem) { m.FailSyncsAfter(n, syscall.EIO) }, syscall.EIO})
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			m := vfs.NewMem()
			l, _ := mustOpen(t, m, chunk)
			mustAppend(t, l, es[:20]...)
			mustSync(t, l)
			mustAppend(t, l, es[20:]...)
			f.arm(m)
			d, err := l.Sync()
			if !errors.Is(err, f.reason) || !errors.Is(err, ErrPoisoned) {
				t.Fatalf("Sync = %v; want %v and ErrPoisoned", err, f.reason)
			}
			if d != 20 {
				t.Fatalf("failed Sync reported durable %d; want 20", d)
			}
			m.ClearFaults()
			// Poisoned: every call fails with the same error, even now that
			// the disk works again.
			errs := []error{l.Append(genEntry(23, 61, 1)), l.SetCommitted(1), l.Truncate(30)}
			_, e1 := l.Sync()
			_, e2 := l.Read(1)
			errs = append(errs, e1, e2, l.Scan(1, func(*Entry) error { return nil }), l.Close())
			for i, e := range errs {
				if !errors.Is(e, ErrPoisoned) || !errors.Is(e, f.reason) {
					t.Fatalf("call %d after failure = %v; want the poison error", i, e)
				}
			}
			for _, img := range []*vfs.Mem{m, m.Crash(seeded(uint64(len(f.name))))} {
				l, rec := mustOpen(t, img, chunk)
				if rec.LastSeqno < 20 {
					t.Fatalf("reopen lost durable entries: %+v", rec)
				}
				checkContent(t, l, es[:rec.LastSeqno])
				mustClose(t, l)
			}
		})
	}
}

func TestCommitAndTruncateFailuresPoison(t *testing.T) {
	for _, op := range []string{"commit", "truncate"} {
		t.Run(op, func(t *testing.T) {
			m := vfs.NewMem()
			l, _ := mustOpen(t, m, 300)
			es := gen(24, 1, 40, 1)
			mustAppend(t, l, es...)
			mustSync(t, l)
			m.FailSyncsAfter(0, syscall.EIO)
			var err error
			if op == "commit" {
				err = l.SetCommitted(40)
			} else {
				err = l.Truncate(5)
			}
			if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrPoisoned) {
				t.Fatalf("%s = %v; want EIO and ErrPoisoned", op, err)
			}
			if _, err := l.Sync(); !errors.Is(err, ErrPoisoned) {
				t.Fatalf("Sync after failed %s = %v", op, err)
			}
			m.ClearFaults()
			l, rec := mustOpen(t, m, 300)
			// A failed truncate may or may not have taken effect; the ledger
			// is consistent either way.
			checkContent(t, l, es[:rec.LastSeqno])
			if op == "commit" && rec.LastSeqno != 40 {
				t.Fatalf("failed commit lost entries: %+v", rec)
			}
			mustClose(t, l)
		})
	}
}

// TestCrashDuringTruncate crashes a Truncate that removes many files at each
// of its sync points: whatever subset of the removals survives, the ledger
// opens, keeps every entry up to after, and holds nothing but appended
// entries.
func TestCrashDuringTruncate(t *testing.T) {
	// Chunk size 1: a signature ends each file. Entries 11-15 are plain, so
	// ledger_11 holds 11-16 and Truncate(13) both removes ledger_17 …
	// ledger_30 and cuts ledger_11: two sync points.
	es := gen(25, 1, 30, 1)
	for i, e := range es {
		e.Kind = KindSignature
		if i >= 10 && i < 15 {
			e.Kind = KindTx
		}
	}
	for failAt := range 3 {
		for seed := range uint64(40) {
			m := vfs.NewMem()
			l, _ := mustOpen(t, m, 1)
			mustAppend(t, l, es...)
			mustSync(t, l)
			m.FailSyncsAfter(failAt, syscall.EIO)
			err := l.Truncate(13)
			if failAt < 2 && err == nil {
				t.Fatalf("failAt %d: Truncate succeeded", failAt)
			}
			crashed := m.Crash(seeded(seed))
			l2, rec, err := Open(testDir, memOpts(crashed, 1))
			if err != nil {
				t.Fatalf("failAt %d seed %d: Open after crash in Truncate: %v", failAt, seed, err)
			}
			if rec.LastSeqno < 13 {
				t.Fatalf("failAt %d seed %d: lost entries up to %d", failAt, seed, rec.LastSeqno)
			}
			checkContent(t, l2, es[:rec.LastSeqno])
			mustClose(t, l2)
		}
	}
}

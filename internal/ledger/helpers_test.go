package ledger

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

const testDir = "/ledger"

var quiet = slog.New(slog.DiscardHandler)

func memOpts(fsys vfs.FS, chunkSize int64) Options {
	return Options{FS: fsys, ChunkSize: chunkSize, Logger: quiet}
}

func mustOpen(t testing.TB, fsys vfs.FS, chunkSize int64) (*Ledger, *Recovery) {
	t.Helper()
	l, rec, err := Open(testDir, memOpts(fsys, chunkSize))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, rec
}

func mustAppend(t testing.TB, l *Ledger, es ...*Entry) {
	t.Helper()
	for _, e := range es {
		if err := l.Append(e); err != nil {
			t.Fatalf("Append(%d): %v", e.Seqno, err)
		}
	}
}

func mustSync(t testing.TB, l *Ledger) ids.Seqno {
	t.Helper()
	d, err := l.Sync()
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return d
}

func mustClose(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// gen returns entries from..to of a test stream (seed), all in view.
func gen(seed uint64, from, to ids.Seqno, view ids.View) []*Entry {
	var out []*Entry
	for s := from; s <= to; s++ {
		out = append(out, genEntry(seed, s, view))
	}
	return out
}

// checkContent asserts that the ledger's durable entries are exactly want.
func checkContent(t testing.TB, l *Ledger, want []*Entry) {
	t.Helper()
	if got := l.DurableSeqno(); got != ids.Seqno(len(want)) {
		t.Fatalf("DurableSeqno = %d, want %d", got, len(want))
	}
	i := 0
	err := l.Scan(1, func(e *Entry) error {
		if i >= len(want) || !entriesEqual(e, want[i]) {
			t.Fatalf("Scan entry %d (seqno %d) differs from what was appended", i, e.Seqno)
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("Scan: %d entries, %v; want %d", i, err, len(want))
	}
}

// dirFiles returns the ledger directory's files and their bytes.
func dirFiles(t testing.TB, fsys vfs.FS) map[string]string {
	t.Helper()
	ents, err := fsys.ReadDir(testDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := vfs.ReadFile(fsys, filepath.Join(testDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// expectFiles is an independent model of the chunk rule: the files (name →
// bytes) a ledger holding entries must consist of.
func expectFiles(entries []*Entry, chunkSize int64, committed ids.Seqno) map[string]string {
	out := map[string]string{}
	var cur []byte
	var first ids.Seqno
	open := false
	for _, e := range entries {
		if !open {
			first, cur, open = e.Seqno, nil, true
		}
		cur = e.AppendBinary(cur)
		if e.Kind == KindSignature && int64(len(cur)) >= chunkSize {
			name := tailName(first)
			if e.Seqno <= committed {
				name = committedName(first, e.Seqno)
			}
			out[name] = string(cur)
			open = false
		}
	}
	if open {
		out[tailName(first)] = string(cur)
	}
	return out
}

func sameFiles(t testing.TB, got, want map[string]string) {
	t.Helper()
	for name, b := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("missing file %s; have %v", name, keys(got))
		} else if g != b {
			t.Errorf("file %s: %d bytes differ from the expected %d", name, len(g), len(b))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s", name)
		}
	}
}

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}

// writeFile creates a file in the ledger directory with exactly data.
func writeFile(t testing.TB, fsys vfs.FS, name string, data []byte) {
	t.Helper()
	if err := vfs.MkdirAllSync(fsys, testDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, filepath.Join(testDir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func asCorrupt(t testing.TB, err error) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v is not a *CorruptError matching ErrCorrupt", err)
	}
	return ce
}

var errStop = errors.New("stop")

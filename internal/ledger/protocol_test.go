package ledger

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// recFS records the durability-relevant operations a ledger performs, so
// that tests can check the write protocol itself, independently of how
// faithfully Mem's crash model captures a given file system.
type recFS struct {
	vfs.FS
	ops *[]string
}

func (r recFS) log(format string, args ...any) { *r.ops = append(*r.ops, fmt.Sprintf(format, args...)) }

func (r recFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := r.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		r.log("create %s", filepath.Base(name))
	}
	return recFile{File: f, r: r}, nil
}

func (r recFS) Rename(o, n string) error {
	r.log("rename %s %s", filepath.Base(o), filepath.Base(n))
	return r.FS.Rename(o, n)
}

func (r recFS) Remove(name string) error {
	r.log("remove %s", filepath.Base(name))
	return r.FS.Remove(name)
}

func (r recFS) SyncDir(dir string) error {
	r.log("syncdir")
	return r.FS.SyncDir(dir)
}

type recFile struct {
	vfs.File
	r recFS
}

func (f recFile) Write(p []byte) (int, error) {
	f.r.log("write %s", filepath.Base(f.Name()))
	return f.File.Write(p)
}

func (f recFile) Sync() error {
	f.r.log("fsync %s", filepath.Base(f.Name()))
	return f.File.Sync()
}

func (f recFile) Truncate(size int64) error {
	f.r.log("truncate %s", filepath.Base(f.Name()))
	return f.File.Truncate(size)
}

// TestSyncProtocol checks, for one Sync spanning several new chunk files,
// the ordering that makes "only the last file can be torn" and "no gap after
// a crash" hold on any POSIX file system: a file is fsynced after its last
// write and before the next file is created; the directory is synced between
// two creates and before Sync returns.
func TestSyncProtocol(t *testing.T) {
	var ops []string
	l, _, err := Open(testDir, memOpts(recFS{FS: vfs.NewMem(), ops: &ops}, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, l)
	es := gen(30, 1, 6, 1)
	for _, e := range es {
		e.Kind = KindSignature // chunk size 1: every entry completes a file
	}
	mustAppend(t, l, es...)
	ops = nil
	mustSync(t, l)
	var want []string
	for i := 1; i <= 6; i++ {
		if i > 1 {
			want = append(want, "syncdir")
		}
		f := tailName(ids.Seqno(i))
		want = append(want, "create "+f, "write "+f, "fsync "+f)
	}
	want = append(want, "syncdir")
	if !slices.Equal(ops, want) {
		t.Fatalf("Sync did\n  %s\nwant\n  %s", strings.Join(ops, "\n  "), strings.Join(want, "\n  "))
	}

	// Truncate removes files from the last one back, syncs the directory,
	// then cuts and fsyncs the file that keeps the new last entry.
	mustAppend(t, l, genEntry(30, 7, 1))
	mustSync(t, l)
	ops = nil
	if err := l.Truncate(2); err != nil {
		t.Fatal(err)
	}
	want = []string{"remove ledger_7", "remove ledger_6", "remove ledger_5", "remove ledger_4", "remove ledger_3", "syncdir"}
	if !slices.Equal(ops, want) {
		t.Fatalf("Truncate did\n  %s\nwant\n  %s", strings.Join(ops, "\n  "), strings.Join(want, "\n  "))
	}
}

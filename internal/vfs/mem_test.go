package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"syscall"
	"testing"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// exists reports whether name exists in fsys, failing on any other error.
func exists(t *testing.T, fsys FS, name string) bool {
	t.Helper()
	_, err := fsys.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// snapshot returns every file under dir in m with its content.
func snapshot(t *testing.T, m *Mem, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := m.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		if e.IsDir() {
			for k, v := range snapshot(t, m, p) {
				out[k] = v
			}
			continue
		}
		out[p] = readAll(t, m, p)
	}
	return out
}

func TestCrashKeepsSyncedState(t *testing.T) {
	m := NewMem()
	if err := MkdirAllSync(m, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := m.Create("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "durable")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(50) {
		c := m.Crash(seeded(seed))
		if got := readAll(t, c, "/d/f"); got != "durable" {
			t.Fatalf("seed %d: content %q; want \"durable\"", seed, got)
		}
	}
}

func TestCrashLosesUnsyncedDirEntries(t *testing.T) {
	m := NewMem()
	if err := MkdirAllSync(m, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := m.Create("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "x")
	// File.Sync does not make the name durable.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	seen := map[bool]int{}
	for seed := range uint64(50) {
		c := m.Crash(seeded(seed))
		ok := exists(t, c, "/d/f")
		seen[ok]++
		if ok && readAll(t, c, "/d/f") != "x" {
			t.Fatalf("seed %d: surviving file lost synced content", seed)
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("over 50 crashes the unsynced create always/never survived: %v", seen)
	}
}

func TestCrashRenameIsAtomic(t *testing.T) {
	m := NewMem()
	if err := MkdirAllSync(m, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(m, "/d/a", []byte("A"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("/d/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seed := range uint64(50) {
		c := m.Crash(seeded(seed))
		a, b := exists(t, c, "/d/a"), exists(t, c, "/d/b")
		if a == b {
			t.Fatalf("seed %d: a exists %v, b exists %v; want exactly one", seed, a, b)
		}
		if a {
			seen["a"]++
		} else {
			seen["b"]++
		}
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("rename without SyncDir always/never survived: %v", seen)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(20) {
		c := m.Crash(seeded(seed))
		if exists(t, c, "/d/a") || readAll(t, c, "/d/b") != "A" {
			t.Fatalf("seed %d: synced rename not durable", seed)
		}
	}
}

// TestCrashTornWrites checks the torn-write model: after a crash a file holds
// its synced content followed by some whole unsynced writes, then possibly a
// prefix of the next write, which may read back as zeros.
func TestCrashTornWrites(t *testing.T) {
	m := NewMem()
	if err := MkdirAllSync(m, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenFile("/d/log", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "synced|")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	writes := []string{"first-write|", "second-write|", "third-write|"}
	for _, w := range writes {
		mustWrite(t, f, w)
	}
	outcomes := map[string]int{}
	for seed := range uint64(300) {
		got := []byte(readAll(t, m.Crash(seeded(seed)), "/d/log"))
		rest, ok := bytes.CutPrefix(got, []byte("synced|"))
		if !ok {
			t.Fatalf("seed %d: synced prefix lost: %q", seed, got)
		}
		whole := 0
		for whole < len(writes) && bytes.HasPrefix(rest, []byte(writes[whole])) {
			rest = rest[len(writes[whole]):]
			whole++
		}
		switch {
		case len(rest) == 0 && whole == 0:
			outcomes["none"]++
		case len(rest) == 0 && whole == len(writes):
			outcomes["all"]++
		case len(rest) == 0:
			outcomes["some"]++
		case whole < len(writes) && bytes.HasPrefix([]byte(writes[whole]), rest):
			outcomes["torn"]++
		case whole < len(writes) && len(rest) <= len(writes[whole]) && bytes.Count(rest, []byte{0}) == len(rest):
			outcomes["zeros"]++
		default:
			t.Fatalf("seed %d: %q is not synced content plus a prefix of the later writes", seed, got)
		}
	}
	for _, o := range []string{"none", "all", "some", "torn", "zeros"} {
		if outcomes[o] == 0 {
			t.Errorf("outcome %q never produced in 300 crashes: %v", o, outcomes)
		}
	}
}

func TestCrashDeterministic(t *testing.T) {
	m := NewMem()
	if err := MkdirAllSync(m, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"/d/a", "/d/b", "/d/c"} {
		f, err := m.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			mustWrite(t, f, string(rune('a'+i+j)))
		}
	}
	for seed := range uint64(20) {
		a := snapshot(t, m.Crash(seeded(seed)), "/")
		b := snapshot(t, m.Crash(seeded(seed)), "/")
		if len(a) != len(b) {
			t.Fatalf("seed %d: %v vs %v", seed, a, b)
		}
		for k, v := range a {
			if b[k] != v {
				t.Fatalf("seed %d: %s = %q vs %q", seed, k, v, b[k])
			}
		}
	}
}

func TestCrashUnsyncedMkdirAndRemove(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/p/q", 0o755); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for seed := range uint64(30) {
		if !exists(t, m.Crash(seeded(seed)), "/p/q") {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("unsynced MkdirAll always survived")
	}
	if err := MkdirAllSync(m, "/p/q", 0o755); err != nil {
		t.Fatal(err)
	}
	// The directories already existed, so MkdirAllSync synced nothing: they
	// are still not durable. Sync explicitly, as a caller that created them
	// with MkdirAll must.
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/p"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(m, "/p/q/f", []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("/p/q/f"); err != nil {
		t.Fatal(err)
	}
	back := 0
	for seed := range uint64(30) {
		c := m.Crash(seeded(seed))
		if exists(t, c, "/p/q/f") {
			back++
		}
	}
	if back == 0 {
		t.Fatal("unsynced Remove was always durable")
	}
}

func TestFailWritesAfter(t *testing.T) {
	m := NewMem()
	f, err := m.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	m.FailWritesAfter(5, syscall.ENOSPC)
	mustWrite(t, f, "abc")
	n, err := f.Write([]byte("defg"))
	if n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write crossing the budget = %d, %v; want 2, ENOSPC", n, err)
	}
	if n, err := f.Write([]byte("h")); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write after budget = %d, %v; want 0, ENOSPC", n, err)
	}
	m.ClearFaults()
	mustWrite(t, f, "h")
	if got := readAll(t, m, "/f"); got != "abcdeh" {
		t.Fatalf("content = %q; want \"abcdeh\"", got)
	}
}

func TestFailNameChanges(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	open, err := m.Create("/d/open")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, open, "abc")
	m.FailNameChanges(syscall.EACCES)
	refused := map[string]error{}
	_, refused["create"] = m.Create("/d/new")
	refused["rename"] = m.Rename("/d/open", "/d/moved")
	refused["remove"] = m.Remove("/d/open")
	refused["mkdir"] = m.MkdirAll("/d/sub", 0o755)
	for op, err := range refused {
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s with name changes failing = %v; want EACCES", op, err)
		}
	}
	// What is already open stays writable, and existing names open.
	mustWrite(t, open, "def")
	if _, err := m.OpenFile("/d/open", os.O_RDWR, 0); err != nil {
		t.Fatalf("opening an existing file: %v", err)
	}
	if got := snapshot(t, m, "/d"); len(got) != 1 || got["/d/open"] != "abcdef" {
		t.Fatalf("directory after refused changes = %v; want only /d/open", got)
	}
	m.ClearFaults()
	if _, err := m.Create("/d/new"); err != nil {
		t.Fatalf("Create after ClearFaults: %v", err)
	}
}

func TestFailSyncsAfter(t *testing.T) {
	m := NewMem()
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	f, err := m.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	m.FailSyncsAfter(1, syscall.EIO)
	if err := m.SyncDir("/"); err != nil {
		t.Fatalf("first sync failed: %v", err)
	}
	mustWrite(t, f, "lost")
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v; want EIO", err)
	}
	if err := m.SyncDir("/"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncDir = %v; want EIO", err)
	}
	// The failed sync made nothing durable: some crash loses the data.
	lost := false
	for seed := range uint64(30) {
		if readAll(t, m.Crash(seeded(seed)), "/f") == "" {
			lost = true
		}
	}
	if !lost {
		t.Fatal("data written before a failed Sync survived every crash")
	}
	m.ClearFaults()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m.Crash(seeded(1)), "/f"); got != "lost" {
		t.Fatalf("after a successful Sync content = %q", got)
	}
}

func TestMemRejectsUnsupported(t *testing.T) {
	m := NewMem()
	if _, err := m.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_SYNC, 0o600); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("O_SYNC = %v; want EINVAL", err)
	}
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("/d", "/e"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Rename(dir) = %v; want EINVAL", err)
	}
	if _, err := m.OpenFile("/d", os.O_RDONLY, 0); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Open(dir) = %v; want EISDIR", err)
	}
}

// TestWriteFileAtomicCrash crashes at every sync point of WriteFileAtomic and
// checks that the file holds the old or the new content, never anything else.
func TestWriteFileAtomicCrash(t *testing.T) {
	for failAt := range 3 {
		for seed := range uint64(20) {
			m := NewMem()
			if err := MkdirAllSync(m, "/d", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(m, "/d/f", []byte("old content"), 0o600); err != nil {
				t.Fatal(err)
			}
			m.FailSyncsAfter(failAt, syscall.EIO)
			err := WriteFileAtomic(m, "/d/f", []byte("new content!"), 0o600)
			if failAt < 2 && err == nil {
				t.Fatalf("failAt %d: WriteFileAtomic succeeded despite failing sync", failAt)
			}
			got := readAll(t, m.Crash(seeded(seed)), "/d/f")
			if got != "old content" && got != "new content!" {
				t.Fatalf("failAt %d seed %d: content %q", failAt, seed, got)
			}
			if err == nil && got != "new content!" {
				t.Fatalf("failAt %d seed %d: WriteFileAtomic returned nil but crash lost it", failAt, seed)
			}
		}
	}
}

package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// impls runs a test against both implementations so that Mem is held to the
// behaviour of the real file system.
func impls(t *testing.T, fn func(t *testing.T, fsys FS, root string)) {
	t.Run("OS", func(t *testing.T) { fn(t, OS(), t.TempDir()) })
	t.Run("Mem", func(t *testing.T) { fn(t, NewMem(), "/data") })
}

func mustWrite(t *testing.T, f File, p string) {
	t.Helper()
	if n, err := f.Write([]byte(p)); err != nil || n != len(p) {
		t.Fatalf("Write(%q) = %d, %v", p, n, err)
	}
}

func readAll(t *testing.T, fsys FS, name string) string {
	t.Helper()
	b, err := ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", name, err)
	}
	return string(b)
}

func TestFileOps(t *testing.T) {
	impls(t, func(t *testing.T, fsys FS, root string) {
		if err := fsys.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(root, "a", "b", "f")
		f, err := fsys.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "hello ")
		mustWrite(t, f, "world")
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); err != nil || string(buf[:n]) != "world" {
			t.Fatalf("ReadAt = %q, %v", buf[:n], err)
		}
		if n, err := f.ReadAt(buf, 8); !errors.Is(err, io.EOF) || string(buf[:n]) != "rld" {
			t.Fatalf("short ReadAt = %q, %v; want \"rld\", EOF", buf[:n], err)
		}
		if err := f.Truncate(5); err != nil {
			t.Fatal(err)
		}
		if size, err := Size(f); err != nil || size != 5 {
			t.Fatalf("Size = %d, %v; want 5", size, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if f.Name() != name {
			t.Errorf("Name = %q; want %q", f.Name(), name)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("second Close = %v; want ErrClosed", err)
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Write after Close = %v; want ErrClosed", err)
		}

		// O_APPEND writes at the end even after a truncation.
		a, err := fsys.OpenFile(name, os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, a, "!!")
		if err := a.Truncate(3); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, a, "p")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fsys, name); got != "help" {
			t.Fatalf("content = %q; want \"help\"", got)
		}

		// A read-only file rejects writes.
		r, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write([]byte("x")); err == nil {
			t.Error("Write on read-only file succeeded")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		if _, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
			t.Errorf("O_EXCL on existing file = %v; want ErrExist", err)
		}
		if _, err := fsys.Open(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(missing) = %v; want ErrNotExist", err)
		}
		if _, err := fsys.Stat(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(missing) = %v; want ErrNotExist", err)
		}

		// Rename replaces the target; ReadDir lists sorted names.
		other := filepath.Join(root, "a", "b", "e")
		if err := WriteFileAtomic(fsys, other, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Rename(name, other); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fsys, other); got != "help" {
			t.Fatalf("after rename content = %q; want \"help\"", got)
		}
		if err := fsys.Rename(name, other); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Rename(missing) = %v; want ErrNotExist", err)
		}
		if err := WriteFileAtomic(fsys, name, []byte("f"), 0o600); err != nil {
			t.Fatal(err)
		}
		ents, err := fsys.ReadDir(filepath.Join(root, "a", "b"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"e", "f"}) {
			t.Fatalf("ReadDir = %v; want [e f] (no leftover .tmp)", names)
		}
		if fi, err := fsys.Stat(filepath.Join(root, "a")); err != nil || !fi.IsDir() {
			t.Fatalf("Stat(dir) = %v, %v", fi, err)
		}
		if err := fsys.Remove(filepath.Join(root, "a", "b")); err == nil {
			t.Error("Remove(non-empty dir) succeeded")
		}
		for _, n := range []string{name, other, filepath.Join(root, "a", "b")} {
			if err := fsys.Remove(n); err != nil {
				t.Fatal(err)
			}
		}
		if err := fsys.SyncDir(filepath.Join(root, "a")); err != nil {
			t.Fatal(err)
		}
		if ents, err := fsys.ReadDir(filepath.Join(root, "a")); err != nil || len(ents) != 0 {
			t.Fatalf("ReadDir after removes = %v, %v; want empty", ents, err)
		}
	})
}

func TestReadFileLarge(t *testing.T) {
	impls(t, func(t *testing.T, fsys FS, root string) {
		if err := fsys.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
		name := filepath.Join(root, "big")
		if err := WriteFileAtomic(fsys, name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(fsys, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadFile: %d bytes, %v; want %d bytes", len(got), err, len(data))
		}
	})
}

func TestMkdirAllSync(t *testing.T) {
	impls(t, func(t *testing.T, fsys FS, root string) {
		dir := filepath.Join(root, "x", "y", "z")
		if err := MkdirAllSync(fsys, dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := MkdirAllSync(fsys, dir, 0o755); err != nil {
			t.Fatalf("second MkdirAllSync: %v", err)
		}
		if fi, err := fsys.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("Stat = %v, %v", fi, err)
		}
		file := filepath.Join(root, "file")
		if err := WriteFileAtomic(fsys, file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := MkdirAllSync(fsys, filepath.Join(file, "sub"), 0o755); err == nil {
			t.Fatal("MkdirAllSync under a file succeeded")
		}
	})
}

package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file-system interface. Its methods mirror the os package.
type FS interface {
	// OpenFile opens name with os.O_* flags; perm applies when the file is
	// created.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Create creates or truncates name for reading and writing (mode 0666
	// before umask), like os.Create.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// ReadDir lists dir sorted by name.
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates dir and any missing parents. It does not sync them;
	// see [MkdirAllSync].
	MkdirAll(dir string, perm fs.FileMode) error
	// Stat describes name.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the directory entries of dir durable (creates, renames
	// and removes of its children).
	SyncDir(dir string) error
}

// File is an open file. *os.File satisfies it.
type File interface {
	io.Writer
	io.ReaderAt
	// Sync makes the file's content durable (not its name: see FS.SyncDir).
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Stat describes the file.
	Stat() (fs.FileInfo, error)
	// Name is the name the file was opened with.
	Name() string
	io.Closer
}

// Size returns the current size of f.
func Size(f File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// WriteFileAtomic replaces name with data so that after a crash the file
// holds either its old content or data, never a mix: it writes name+".tmp",
// fsyncs it, renames it over name and fsyncs the directory. Callers must not
// write the same name concurrently (they would share the temporary file). A
// ".tmp" left behind by a crash is overwritten by the next call.
func WriteFileAtomic(fsys FS, name string, data []byte, perm fs.FileMode) (err error) {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			// Best effort: the error being returned is the one that matters,
			// and a leftover temporary file is harmless.
			_ = fsys.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return err
	}
	renamed = true
	return fsys.SyncDir(filepath.Dir(name))
}

// ReadFile returns the whole content of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := Size(f)
	if err != nil {
		return nil, err
	}
	// Read one byte past the reported size so that a file that grew
	// concurrently is still read to its end.
	buf := make([]byte, 0, size+1)
	for {
		n, err := f.ReadAt(buf[len(buf):cap(buf)], int64(len(buf)))
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// MkdirAllSync creates dir and any missing parents, like MkdirAll, and makes
// every directory it created durable by syncing its parent.
func MkdirAllSync(fsys FS, dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	// Find the deepest existing ancestor: everything below it is created here.
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := fsys.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: d, Err: fmt.Errorf("not a directory")}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	// Sync parents top-down so that each new directory's entry is durable
	// before anything beneath it is relied upon.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

package vfs

import (
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mem is an in-memory FS that tracks durability so that tests can simulate
// crashes ([Mem.Crash]) and inject I/O errors ([Mem.FailWritesAfter],
// [Mem.FailSyncsAfter], [Mem.FailNameChanges]). Renaming directories is not supported (EINVAL);
// permissions are recorded but not enforced.
type Mem struct {
	mu   sync.Mutex
	root *memDir

	// Fault injection: a nil error means no fault of that kind is armed.
	writeErr    error
	writeBudget int64 // bytes that may still be written before writeErr
	syncErr     error
	syncBudget  int   // syncs (File.Sync or SyncDir) that still succeed
	nameErr     error // for every create, rename, remove and mkdir
}

// memDir is a directory: its current entries, the entries as of its last
// SyncDir, and the changes since then in order.
type memDir struct {
	entries map[string]any // *memDir or *memFile
	durable map[string]any
	log     []nsOp
}

// nsOp is one change to a directory: name now refers to node (nil: name was
// removed). from, if set, is a name removed in the same atomic step (a
// rename within the directory).
type nsOp struct {
	name string
	node any
	from string
}

func (op nsOp) apply(entries map[string]any) {
	if op.from != "" {
		delete(entries, op.from)
	}
	if op.node == nil {
		delete(entries, op.name)
	} else {
		entries[op.name] = op.node
	}
}

// memFile is a file's content now, as of its last Sync, and the changes
// since then in order.
type memFile struct {
	data    []byte
	synced  []byte
	pending []dataOp
	perm    fs.FileMode
}

// dataOp is a write of data at off, or (truncate) a resize to size.
type dataOp struct {
	off      int64
	data     []byte
	truncate bool
	size     int64
}

func (op dataOp) apply(b []byte) []byte {
	if op.truncate {
		return resize(b, op.size)
	}
	if end := op.off + int64(len(op.data)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[op.off:], op.data)
	return b
}

func resize(b []byte, n int64) []byte {
	if n <= int64(len(b)) {
		return b[:n]
	}
	// Append explicit zeros: bytes beyond len(b) in the backing array may
	// hold data from before an earlier shrink.
	return append(b, make([]byte, n-int64(len(b)))...)
}

// NewMem returns an empty in-memory file system.
func NewMem() *Mem {
	return &Mem{root: newMemDir()}
}

func newMemDir() *memDir {
	return &memDir{entries: map[string]any{}, durable: map[string]any{}}
}

// FailWritesAfter arms a write fault: the next n bytes written (to any file)
// succeed, the write that crosses that limit writes only the bytes within it
// and returns err, and every later write fails with err (a full disk stays
// full) until ClearFaults. err is typically syscall.ENOSPC or syscall.EIO.
func (m *Mem) FailWritesAfter(n int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeErr, m.writeBudget = err, n
}

// FailSyncsAfter arms a sync fault: the next n syncs (File.Sync or SyncDir)
// succeed and every later one fails with err, without making anything
// durable, until ClearFaults.
func (m *Mem) FailSyncsAfter(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncErr, m.syncBudget = err, n
}

// FailNameChanges arms a directory fault: every change to a directory
// (creating a file, rename, remove, making a directory) fails with err until
// ClearFaults, while files already open stay writable. That is a directory
// whose write permission was taken away (err syscall.EACCES); together with
// FailWritesAfter(0, syscall.EROFS), a file system remounted read-only.
func (m *Mem) FailNameChanges(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nameErr = err
}

// ClearFaults disarms all injected faults.
func (m *Mem) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeErr, m.syncErr, m.nameErr = nil, nil, nil
}

// syncFault consumes one sync from the budget and returns the injected error
// if the budget is exhausted. Called with m.mu held.
func (m *Mem) syncFault() error {
	if m.syncErr == nil {
		return nil
	}
	if m.syncBudget == 0 {
		return m.syncErr
	}
	m.syncBudget--
	return nil
}

// Crash returns the file-system image a power cut at this instant could
// leave, chosen by rng: every directory keeps its entries as of its last
// SyncDir plus a random prefix of its later changes; every file keeps its
// content as of its last Sync plus a random prefix of its later writes and
// truncations, where the first change not kept may be torn (a random prefix
// of its bytes survives, and with probability 1/4 those bytes are zeros). The
// result is fully durable and has no faults armed; m is unchanged and remains
// usable (tests normally abandon it, along with its open files).
func (m *Mem) Crash(rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := crasher{rng: rng, done: map[any]any{}}
	return &Mem{root: c.dir(m.root)}
}

type crasher struct {
	rng  *rand.Rand
	done map[any]any // old node → new node, so a node reachable twice is copied once
}

func (c *crasher) dir(d *memDir) *memDir {
	if n, ok := c.done[d]; ok {
		return n.(*memDir)
	}
	entries := maps.Clone(d.durable)
	for _, op := range d.log[:c.rng.IntN(len(d.log)+1)] {
		op.apply(entries)
	}
	nd := newMemDir()
	c.done[d] = nd
	// Sorted so that rng is consumed in a deterministic order.
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		var child any
		switch x := entries[name].(type) {
		case *memDir:
			child = c.dir(x)
		case *memFile:
			child = c.file(x)
		}
		nd.entries[name] = child
		nd.durable[name] = child
	}
	return nd
}

func (c *crasher) file(f *memFile) *memFile {
	if n, ok := c.done[f]; ok {
		return n.(*memFile)
	}
	content := slices.Clone(f.synced)
	k := c.rng.IntN(len(f.pending) + 1)
	for _, op := range f.pending[:k] {
		content = op.apply(content)
	}
	if k < len(f.pending) && !f.pending[k].truncate {
		op := f.pending[k]
		torn := slices.Clone(op.data[:c.rng.IntN(len(op.data)+1)])
		if c.rng.IntN(4) == 0 {
			clear(torn)
		}
		content = dataOp{off: op.off, data: torn}.apply(content)
	}
	nf := &memFile{data: content, synced: slices.Clone(content), perm: f.perm}
	c.done[f] = nf
	return nf
}

// clean maps any path to an absolute slash-separated path under Mem's root.
func clean(name string) string {
	return path.Clean("/" + filepath.ToSlash(name))
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// walk returns the node at p (a cleaned path). Called with m.mu held.
func (m *Mem) walk(p string) (any, error) {
	var node any = m.root
	for _, part := range splitPath(p) {
		d, ok := node.(*memDir)
		if !ok {
			return nil, syscall.ENOTDIR
		}
		if node, ok = d.entries[part]; !ok {
			return nil, syscall.ENOENT
		}
	}
	return node, nil
}

// splitPath returns the components of a cleaned absolute path other than
// the root.
func splitPath(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// parent returns the directory holding p and p's base name. Called with m.mu
// held.
func (m *Mem) parent(p string) (*memDir, string, error) {
	if p == "/" {
		return nil, "", syscall.EINVAL
	}
	node, err := m.walk(path.Dir(p))
	if err != nil {
		return nil, "", err
	}
	d, ok := node.(*memDir)
	if !ok {
		return nil, "", syscall.ENOTDIR
	}
	return d, path.Base(p), nil
}

func (d *memDir) set(op nsOp) {
	op.apply(d.entries)
	d.log = append(d.log, op)
}

const supportedFlags = os.O_RDONLY | os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_EXCL | os.O_TRUNC | os.O_APPEND

// OpenFile implements FS. Flags other than O_RDONLY, O_WRONLY, O_RDWR,
// O_CREATE, O_EXCL, O_TRUNC and O_APPEND are rejected with EINVAL, since
// silently ignoring e.g. O_SYNC would misrepresent durability.
func (m *Mem) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&^supportedFlags != 0 {
		return nil, pathErr("open", name, syscall.EINVAL)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(name)
	d, base, err := m.parent(p)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	h := &memHandle{
		m:      m,
		name:   name,
		read:   acc == os.O_RDONLY || acc == os.O_RDWR,
		write:  acc == os.O_WRONLY || acc == os.O_RDWR,
		append: flag&os.O_APPEND != 0,
	}
	switch node := d.entries[base].(type) {
	case nil:
		if flag&os.O_CREATE == 0 {
			return nil, pathErr("open", name, syscall.ENOENT)
		}
		if m.nameErr != nil {
			return nil, pathErr("open", name, m.nameErr)
		}
		h.f = &memFile{perm: perm.Perm()}
		d.set(nsOp{name: base, node: h.f})
	case *memDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	case *memFile:
		if flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
			return nil, pathErr("open", name, syscall.EEXIST)
		}
		h.f = node
		if flag&os.O_TRUNC != 0 && h.write {
			h.f.change(dataOp{truncate: true})
		}
	}
	return h, nil
}

// Create implements FS.
func (m *Mem) Create(name string) (File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) {
	return m.OpenFile(name, os.O_RDONLY, 0)
}

// ReadDir implements FS.
func (m *Mem) ReadDir(dir string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	node, err := m.walk(clean(dir))
	if err != nil {
		return nil, pathErr("readdir", dir, err)
	}
	d, ok := node.(*memDir)
	if !ok {
		return nil, pathErr("readdir", dir, syscall.ENOTDIR)
	}
	out := make([]fs.DirEntry, 0, len(d.entries))
	for _, name := range slices.Sorted(maps.Keys(d.entries)) {
		out = append(out, fs.FileInfoToDirEntry(info(name, d.entries[name])))
	}
	return out, nil
}

// Rename implements FS.
func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	op, np := clean(oldname), clean(newname)
	od, obase, err := m.parent(op)
	if err != nil {
		return linkErr(err)
	}
	nd, nbase, err := m.parent(np)
	if err != nil {
		return linkErr(err)
	}
	f, ok := od.entries[obase].(*memFile)
	if !ok {
		if od.entries[obase] == nil {
			return linkErr(syscall.ENOENT)
		}
		return linkErr(syscall.EINVAL) // directories: not supported, see Mem
	}
	if _, isDir := nd.entries[nbase].(*memDir); isDir {
		return linkErr(syscall.EISDIR)
	}
	if op == np {
		return nil
	}
	if m.nameErr != nil {
		return linkErr(m.nameErr)
	}
	if od == nd {
		od.set(nsOp{name: nbase, node: f, from: obase})
		return nil
	}
	nd.set(nsOp{name: nbase, node: f})
	od.set(nsOp{name: obase})
	return nil
}

// Remove implements FS.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent(clean(name))
	if err != nil {
		return pathErr("remove", name, err)
	}
	switch node := d.entries[base].(type) {
	case nil:
		return pathErr("remove", name, syscall.ENOENT)
	case *memDir:
		if len(node.entries) > 0 {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	if m.nameErr != nil {
		return pathErr("remove", name, m.nameErr)
	}
	d.set(nsOp{name: base})
	return nil
}

// MkdirAll implements FS.
func (m *Mem) MkdirAll(dir string, _ fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.root
	for _, part := range splitPath(clean(dir)) {
		switch node := d.entries[part].(type) {
		case nil:
			if m.nameErr != nil {
				return pathErr("mkdir", dir, m.nameErr)
			}
			nd := newMemDir()
			d.set(nsOp{name: part, node: nd})
			d = nd
		case *memDir:
			d = node
		default:
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
	}
	return nil
}

// Stat implements FS.
func (m *Mem) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := clean(name)
	node, err := m.walk(p)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return info(path.Base(p), node), nil
}

// SyncDir implements FS.
func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	node, err := m.walk(clean(dir))
	if err != nil {
		return pathErr("sync", dir, err)
	}
	d, ok := node.(*memDir)
	if !ok {
		return pathErr("sync", dir, syscall.ENOTDIR)
	}
	if err := m.syncFault(); err != nil {
		return pathErr("sync", dir, err)
	}
	d.durable = maps.Clone(d.entries)
	d.log = nil
	return nil
}

// change applies op to the file's current content and records it as not yet
// durable.
func (f *memFile) change(op dataOp) {
	f.data = op.apply(f.data)
	f.pending = append(f.pending, op)
}

// memHandle is an open Mem file.
type memHandle struct {
	m      *Mem
	f      *memFile
	name   string
	read   bool
	write  bool
	append bool
	off    int64 // next write position unless append
	closed bool
}

func (h *memHandle) Name() string { return h.name }

func (h *memHandle) Write(p []byte) (int, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, pathErr("write", h.name, fs.ErrClosed)
	}
	if !h.write {
		return 0, pathErr("write", h.name, syscall.EBADF)
	}
	n := len(p)
	var fault error
	if h.m.writeErr != nil && int64(n) > h.m.writeBudget {
		n, fault = int(h.m.writeBudget), h.m.writeErr
	}
	if h.m.writeErr != nil {
		h.m.writeBudget -= int64(n)
	}
	off := h.off
	if h.append {
		off = int64(len(h.f.data))
	}
	if n > 0 {
		h.f.change(dataOp{off: off, data: slices.Clone(p[:n])})
	}
	h.off = off + int64(n)
	if fault != nil {
		return n, pathErr("write", h.name, fault)
	}
	return n, nil
}

func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return 0, pathErr("read", h.name, fs.ErrClosed)
	}
	if !h.read {
		return 0, pathErr("read", h.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("readat", h.name, syscall.EINVAL)
	}
	if off >= int64(len(h.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) Sync() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return pathErr("sync", h.name, fs.ErrClosed)
	}
	if err := h.m.syncFault(); err != nil {
		return pathErr("sync", h.name, err)
	}
	for _, op := range h.f.pending {
		h.f.synced = op.apply(h.f.synced)
	}
	h.f.pending = nil
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return pathErr("truncate", h.name, fs.ErrClosed)
	}
	if !h.write || size < 0 {
		return pathErr("truncate", h.name, syscall.EINVAL)
	}
	h.f.change(dataOp{truncate: true, size: size})
	return nil
}

func (h *memHandle) Stat() (fs.FileInfo, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return nil, pathErr("stat", h.name, fs.ErrClosed)
	}
	return info(path.Base(clean(h.name)), h.f), nil
}

func (h *memHandle) Close() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.closed {
		return pathErr("close", h.name, fs.ErrClosed)
	}
	h.closed = true
	return nil
}

// memInfo implements fs.FileInfo. ModTime is always the zero time so that
// tests stay deterministic.
type memInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func info(name string, node any) memInfo {
	switch x := node.(type) {
	case *memDir:
		return memInfo{name: name, mode: fs.ModeDir | 0o755}
	case *memFile:
		return memInfo{name: name, size: int64(len(x.data)), mode: x.perm}
	}
	panic("vfs: unknown mem node type") // unreachable: nodes are only *memDir or *memFile
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

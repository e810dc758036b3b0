package ledger

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// DefaultChunkSize is the chunk size used when Options.ChunkSize is 0.
const DefaultChunkSize = 4 << 20

const (
	filePerm = 0o640
	dirPerm  = 0o750
	// maxRetainedBuffer caps the append buffer capacity kept for reuse, so
	// that one huge batch does not pin its memory forever.
	maxRetainedBuffer = 16 << 20
)

// Options configures Open.
type Options struct {
	// ChunkSize is the size at which a chunk is complete: when an appended
	// KindSignature entry brings its file to at least ChunkSize bytes, the
	// next entry starts a new file. It must be the same on every node of a
	// service for chunks to be byte-identical. 0 means DefaultChunkSize.
	ChunkSize int64
	// FS is the file system; nil means vfs.OS().
	FS vfs.FS
	// Logger receives recovery reports; nil means slog.Default().
	Logger *slog.Logger
}

// Recovery reports what Open did to make the ledger consistent.
type Recovery struct {
	// LastSeqno is the last entry in the ledger after recovery (0 if empty).
	LastSeqno ids.Seqno
	// TruncatedFile is the path of the last tail file if Open cut a torn or
	// corrupt suffix from it, or removed it because it held no complete
	// entry; "" if nothing was dropped.
	TruncatedFile string
	// TruncatedAt is the offset the file was cut at (0 if it was removed).
	TruncatedAt int64
	// TruncatedBytes is how many bytes were dropped.
	TruncatedBytes int64
	// Reason describes the damage found at TruncatedAt.
	Reason string
}

// Ledger is an open ledger directory. See the package documentation for the
// concurrency contract.
type Ledger struct {
	dir       string
	fs        vfs.FS
	chunkSize int64
	log       *slog.Logger

	poison atomic.Pointer[error] // set once, by the first failed mutation
	closed atomic.Bool

	// Append side: the entries appended since the last Sync took them.
	mu       sync.Mutex
	buf      []byte         // encoded entries, back to back
	pend     []pendingEntry // one per entry in buf
	last     ids.Seqno      // last appended seqno
	lastView ids.View       // view of entry last

	// Syncer side. syncMu serialises Sync, SetCommitted, Truncate and
	// Close; the fields below and every write to the index are made with it
	// held.
	syncMu      sync.Mutex
	spareBuf    []byte
	sparePend   []pendingEntry
	committed   ids.Seqno // highest seqno known committed
	durableView ids.View  // view of entry durable

	// Index of durable entries. Written with syncMu and idx held, read with
	// either.
	idx     sync.RWMutex
	chunks  []*chunk
	durable ids.Seqno
}

type pendingEntry struct {
	end  int // offset in buf just past this entry
	kind Kind
}

// chunk is one ledger file and the offsets of its durable entries.
type chunk struct {
	first     ids.Seqno
	offsets   []int64 // offsets[i] is where entry first+i starts
	size      int64   // durable bytes: the end of the last entry
	committed bool    // named ledger_<first>-<last>.committed
	complete  bool    // no entry will be added to the file
	// h is the open file of a chunk that is not committed, used by the
	// syncer to write and by readers to read. Committed chunks are opened
	// per read so the number of open files stays bounded.
	h *handle
}

func (c *chunk) last() ids.Seqno { return c.first + ids.Seqno(len(c.offsets)) - 1 }

func (c *chunk) name() string {
	if c.committed {
		return committedName(c.first, c.last())
	}
	return tailName(c.first)
}

// entryEnd is the end offset of the i-th entry of c.
func (c *chunk) entryEnd(i int) int64 {
	if i+1 < len(c.offsets) {
		return c.offsets[i+1]
	}
	return c.size
}

// handle is a reference-counted open file: the index holds one reference
// and each in-flight read another, so a reader never finds its file closed
// under it when a chunk is committed.
type handle struct {
	f    vfs.File
	refs atomic.Int32
}

func newHandle(f vfs.File) *handle {
	h := &handle{f: f}
	h.refs.Store(1)
	return h
}

func (h *handle) acquire() { h.refs.Add(1) }

// release drops a reference and closes the file with the last one. The close
// error is ignored: everything written through the file was fsynced before
// it was published, so close cannot lose data.
func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		_ = h.f.Close()
	}
}

// Open opens (creating if needed) the ledger in dir, checks every file and
// rebuilds the index. It recovers from a crash by truncating a torn or
// corrupt suffix of the last tail file (removing the file if nothing valid
// remains), reported in Recovery and logged. Any other damage — in a
// committed chunk, in a tail file other than the last, a gap, an overlap, a
// misnamed file, an entry out of sequence — is a *CorruptError: committed
// data is never repaired.
func Open(dir string, opts Options) (*Ledger, *Recovery, error) {
	l := &Ledger{dir: dir, fs: opts.FS, chunkSize: opts.ChunkSize, log: opts.Logger}
	if l.fs == nil {
		l.fs = vfs.OS()
	}
	if l.chunkSize <= 0 {
		l.chunkSize = DefaultChunkSize
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if err := vfs.MkdirAllSync(l.fs, dir, dirPerm); err != nil {
		return nil, nil, fmt.Errorf("ledger: create %s: %w", dir, err)
	}
	rec, err := l.load()
	if err != nil {
		l.releaseAll()
		return nil, nil, err
	}
	return l, rec, nil
}

// load scans the directory into the index, recovering the last tail file.
func (l *Ledger) load() (*Recovery, error) {
	files, ignored, err := listDir(l.fs, l.dir)
	if err != nil {
		return nil, err
	}
	if len(ignored) > 0 {
		l.log.Warn("ledger: ignoring files without the ledger_ prefix", "dir", l.dir, "files", ignored)
	}
	rec := &Recovery{}
	var prevLast ids.Seqno
	var view ids.View
	for i, name := range files {
		path := filepath.Join(l.dir, name.base)
		isLast := i == len(files)-1
		if err := checkFollows(path, name, prevLast); err != nil {
			return nil, err
		}
		c, sc, err := l.loadFile(path, name, view, isLast, rec)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue // an empty last tail, removed
		}
		l.chunks = append(l.chunks, c)
		prevLast, view = c.last(), sc.lastView
		if c.committed {
			l.committed = prevLast
		}
	}
	l.last, l.durable = prevLast, prevLast
	l.lastView, l.durableView = view, view
	rec.LastSeqno = prevLast
	return rec, nil
}

// loadFile scans and checks one file; for the last tail it performs crash
// recovery. It returns a nil chunk if the file was removed.
func (l *Ledger) loadFile(path string, name fileName, view ids.View, isLast bool, rec *Recovery) (*chunk, fileScan, error) {
	flag := os.O_RDWR | os.O_APPEND
	if name.committed {
		flag = os.O_RDONLY
	}
	f, err := l.fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fileScan{}, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	c, sc, err := l.recoverFile(f, path, name, view, isLast, rec)
	if err != nil || c == nil || c.committed {
		// Committed chunks are opened per read. Close errors are moot: only
		// recovery wrote through f, and it fsynced.
		_ = f.Close()
		return c, sc, err
	}
	c.h = newHandle(f)
	return c, sc, nil
}

// recoverFile does loadFile's work on the open file f. It returns a nil
// chunk, with no error, if the last tail held no valid entry and was removed.
func (l *Ledger) recoverFile(f vfs.File, path string, name fileName, view ids.View, isLast bool, rec *Recovery) (*chunk, fileScan, error) {
	size, err := vfs.Size(f)
	if err != nil {
		return nil, fileScan{}, fmt.Errorf("ledger: stat %s: %w", path, err)
	}
	c := &chunk{first: name.first, committed: name.committed, complete: name.committed || !isLast}
	sc, err := scanFile(f, path, size, name.first, view, func(off int64, _ *Entry) error {
		c.offsets = append(c.offsets, off)
		return nil
	})
	if err != nil {
		return nil, sc, err
	}
	if sc.bad != nil && !(isLast && !name.committed && sc.torn) {
		return nil, sc, sc.bad
	}
	if err := checkChunk(path, name, sc, isLast); err != nil {
		return nil, sc, err
	}
	if sc.bad != nil || sc.count == 0 {
		// Only the last tail gets here (checkChunk refuses other empty
		// files). It ends in damage a crash can leave, or holds nothing:
		// drop that. Everything Sync reported durable precedes it, because
		// Sync fsyncs a file before it creates the next.
		*rec = Recovery{TruncatedFile: path, TruncatedAt: sc.end, TruncatedBytes: size - sc.end, Reason: "empty tail file"}
		if sc.bad != nil {
			rec.Reason = sc.bad.Reason
		}
		if sc.count == 0 {
			err = l.fs.Remove(path)
			if err == nil {
				err = l.fs.SyncDir(l.dir)
			}
		} else {
			err = truncateSync(f, sc.end)
		}
		if err != nil {
			return nil, sc, fmt.Errorf("ledger: recover %s: %w", path, err)
		}
		l.log.Warn("ledger: dropped damaged tail after crash",
			"file", path, "offset", rec.TruncatedAt, "bytes", rec.TruncatedBytes, "reason", rec.Reason)
		if sc.count == 0 {
			return nil, sc, nil
		}
	}
	c.size = sc.end
	if isLast && !name.committed {
		c.complete = sc.lastKind == KindSignature && c.size >= l.chunkSize
	}
	return c, sc, nil
}

func truncateSync(f vfs.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// check returns the error every call must return once the ledger is closed
// or poisoned.
func (l *Ledger) check() error {
	if p := l.poison.Load(); p != nil {
		return *p
	}
	if l.closed.Load() {
		return ErrClosed
	}
	return nil
}

// fail poisons the ledger with cause (the first cause wins) and returns the
// poison error.
func (l *Ledger) fail(cause error) error {
	err := fmt.Errorf("%w: %w", ErrPoisoned, cause)
	l.poison.CompareAndSwap(nil, &err)
	return *l.poison.Load()
}

// LastSeqno returns the seqno of the last appended entry, durable or not (0
// for an empty ledger).
func (l *Ledger) LastSeqno() ids.Seqno {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// DurableSeqno returns the seqno up to which entries are fsynced.
func (l *Ledger) DurableSeqno() ids.Seqno {
	l.idx.RLock()
	defer l.idx.RUnlock()
	return l.durable
}

// Append adds e after the last entry. It encodes e into memory and does no
// I/O; the entry becomes durable, and readable, at the next Sync. e.Seqno
// must be LastSeqno()+1 and e.View at least the previous entry's view.
// Append copies e, which the caller may reuse.
func (l *Ledger) Append(e *Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	if e.Seqno != l.last+1 {
		return fmt.Errorf("%w: seqno %d, want %d", ErrOutOfOrder, e.Seqno, l.last+1)
	}
	if e.View < l.lastView {
		return fmt.Errorf("%w: view %d after view %d", ErrOutOfOrder, e.View, l.lastView)
	}
	l.buf = e.AppendBinary(l.buf)
	l.pend = append(l.pend, pendingEntry{end: len(l.buf), kind: e.Kind})
	l.last, l.lastView = e.Seqno, e.View
	return nil
}

// Sync writes every entry appended before the call, completing and starting
// chunk files as the chunk rule dictates, fsyncs them (and the directory if
// a file was created) and returns the durable seqno. Appends proceed
// concurrently: Sync swaps the append buffer out and writes it without
// holding the append lock. On any failure the ledger is poisoned.
func (l *Ledger) Sync() (ids.Seqno, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.check(); err != nil {
		return l.durable, err
	}
	l.mu.Lock()
	buf, pend := l.buf, l.pend
	l.buf, l.pend = l.spareBuf, l.sparePend
	l.mu.Unlock()
	var err error
	if len(pend) > 0 {
		err = l.write(buf, pend)
	}
	if cap(buf) > maxRetainedBuffer {
		buf = nil
	}
	l.spareBuf, l.sparePend = buf[:0], pend[:0]
	if err != nil {
		return l.durable, l.fail(err)
	}
	return l.durable, nil
}

// span is the part of one Sync batch that goes into one file.
type span struct {
	c        *chunk
	isNew    bool
	offsets  []int64 // of the batch's entries in this file
	size     int64   // file size after them
	complete bool
	synced   bool
}

// write writes a batch of encoded entries (seqnos durable+1 …) and publishes
// them in the index once they are durable.
func (l *Ledger) write(buf []byte, pend []pendingEntry) error {
	var (
		spans    []*span
		cur      *span
		dirDirty bool // a file was created and the directory not yet synced
		seq      = l.durable + 1
		start    int // buf offset of the next entry to write
	)
	closeNew := func() {
		for _, s := range spans {
			if s.isNew {
				s.c.h.release()
			}
		}
	}
	for i := 0; i < len(pend); {
		if cur == nil || cur.complete {
			if cur == nil && len(l.chunks) > 0 && !l.chunks[len(l.chunks)-1].complete {
				c := l.chunks[len(l.chunks)-1]
				cur = &span{c: c, size: c.size}
			} else {
				// Make the previous new file's name durable before creating
				// the next, so a crash cannot keep a later file without an
				// earlier one (a gap Open would refuse).
				if dirDirty {
					if err := l.fs.SyncDir(l.dir); err != nil {
						closeNew()
						return fmt.Errorf("ledger: sync dir %s: %w", l.dir, err)
					}
				}
				path := filepath.Join(l.dir, tailName(seq))
				f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, filePerm)
				if err != nil {
					closeNew()
					return fmt.Errorf("ledger: create %s: %w", path, err)
				}
				cur = &span{c: &chunk{first: seq, h: newHandle(f)}, isNew: true}
				dirDirty = true
			}
			spans = append(spans, cur)
		}
		from := start
		for i < len(pend) {
			cur.offsets = append(cur.offsets, cur.size)
			cur.size += int64(pend[i].end - start)
			start = pend[i].end
			seq++
			i++
			if pend[i-1].kind == KindSignature && cur.size >= l.chunkSize {
				cur.complete = true
				break
			}
		}
		// The file's own errors name the operation and the path.
		f := cur.c.h.f
		if _, err := f.Write(buf[from:start]); err != nil {
			closeNew()
			return fmt.Errorf("ledger: %w", err)
		}
		if cur.complete {
			// A completed file is fsynced before the next is created, so
			// only the last file can ever be torn by a crash.
			if err := f.Sync(); err != nil {
				closeNew()
				return fmt.Errorf("ledger: %w", err)
			}
			cur.synced = true
		}
	}
	if !cur.synced {
		if err := cur.c.h.f.Sync(); err != nil {
			closeNew()
			return fmt.Errorf("ledger: %w", err)
		}
	}
	if dirDirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			closeNew()
			return fmt.Errorf("ledger: sync dir %s: %w", l.dir, err)
		}
	}
	// The view of the last entry sits at a fixed offset in its encoding.
	lastStart := 0
	if len(pend) > 1 {
		lastStart = pend[len(pend)-2].end
	}
	l.idx.Lock()
	for _, s := range spans {
		s.c.offsets = append(s.c.offsets, s.offsets...)
		s.c.size, s.c.complete = s.size, s.complete
		if s.isNew {
			l.chunks = append(l.chunks, s.c)
		}
	}
	l.durable = seq - 1
	l.durableView = ids.View(binary.BigEndian.Uint64(buf[lastStart+offView:]))
	l.idx.Unlock()
	return nil
}

// SetCommitted records that entries up to seqno are committed and renames
// every complete chunk whose last entry is committed and durable to
// ledger_<first>-<last>.committed, then syncs the directory. A seqno below
// an earlier one is a no-op. On failure the ledger is poisoned.
func (l *Ledger) SetCommitted(seqno ids.Seqno) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	l.committed = max(l.committed, seqno)
	limit := min(l.committed, l.durable)
	renamed := false
	for _, c := range l.chunks {
		if c.last() > limit || !c.complete {
			break // chunks are in seqno order: no later one qualifies
		}
		if c.committed {
			continue
		}
		oldPath := filepath.Join(l.dir, c.name())
		newPath := filepath.Join(l.dir, committedName(c.first, c.last()))
		if err := l.fs.Rename(oldPath, newPath); err != nil {
			return l.fail(fmt.Errorf("ledger: commit chunk: %w", err))
		}
		renamed = true
		l.idx.Lock()
		c.committed = true
		h := c.h
		c.h = nil
		l.idx.Unlock()
		h.release()
	}
	if renamed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("ledger: sync dir %s: %w", l.dir, err))
		}
	}
	return nil
}

// Truncate drops every entry after seqno after, durable or not, as raft does
// with a conflicting log suffix. It refuses (ErrCommittedTruncation) to drop
// entries at or below the highest seqno passed to SetCommitted or held in a
// committed chunk. It is durable on return: later files are removed and the
// directory synced, then the file holding after is cut and fsynced. On an
// I/O failure the ledger is poisoned.
func (l *Ledger) Truncate(after ids.Seqno) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	if after < l.committed {
		return fmt.Errorf("%w: truncate after %d, but %d is committed", ErrCommittedTruncation, after, l.committed)
	}
	if after >= l.durable {
		l.truncatePending(after)
		return nil
	}
	// Only the syncer changes the index, and we are it: no lock needed to
	// read it, but readers still need it while we change it.
	var view ids.View
	var kind Kind
	if after > 0 {
		e, err := l.Read(after)
		if err != nil {
			return fmt.Errorf("ledger: truncate: read entry %d: %w", after, err)
		}
		view, kind = e.View, e.Kind
	}
	l.mu.Lock()
	l.buf, l.pend = l.buf[:0], l.pend[:0]
	l.last, l.lastView = after, view
	l.mu.Unlock()

	keep := sort.Search(len(l.chunks), func(i int) bool { return l.chunks[i].last() > after })
	removed := append([]*chunk(nil), l.chunks[keep:]...)
	var cut *chunk
	var cutAt int64
	l.idx.Lock()
	l.chunks = l.chunks[:keep]
	if len(removed) > 0 && removed[0].first <= after {
		// after falls inside the first removed chunk: keep it, cut it.
		cut = removed[0]
		removed = removed[1:]
		l.chunks = append(l.chunks, cut)
		n := int(after-cut.first) + 1
		cutAt = cut.entryEnd(n - 1)
		cut.offsets = cut.offsets[:n]
		cut.size = cutAt
		cut.complete = kind == KindSignature && cutAt >= l.chunkSize
	}
	for _, c := range removed {
		c.h.release() // never committed: after >= l.committed
		c.h = nil
	}
	l.durable, l.durableView = after, view
	l.idx.Unlock()

	// Remove from the end so a crash leaves a contiguous prefix of files.
	for i := len(removed) - 1; i >= 0; i-- {
		path := filepath.Join(l.dir, tailName(removed[i].first))
		if err := l.fs.Remove(path); err != nil {
			return l.fail(fmt.Errorf("ledger: truncate: %w", err))
		}
	}
	if len(removed) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("ledger: truncate: sync dir %s: %w", l.dir, err))
		}
	}
	if cut != nil {
		if err := truncateSync(cut.h.f, cutAt); err != nil {
			return l.fail(fmt.Errorf("ledger: %w", err))
		}
	}
	return nil
}

// truncatePending drops appended entries after seqno after that are not yet
// durable (after >= durable).
func (l *Ledger) truncatePending(after ids.Seqno) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after >= l.last {
		return
	}
	keep := int(after - l.durable)
	view := l.durableView
	end := 0
	if keep > 0 {
		end = l.pend[keep-1].end
		start := 0
		if keep > 1 {
			start = l.pend[keep-2].end
		}
		view = ids.View(binary.BigEndian.Uint64(l.buf[start+offView:]))
	}
	l.buf, l.pend = l.buf[:end], l.pend[:keep]
	l.last, l.lastView = after, view
}

// Read returns the durable entry seqno. Its slices are its own.
func (l *Ledger) Read(seqno ids.Seqno) (*Entry, error) {
	blk, err := l.readBlock(seqno, seqno, 0)
	if err != nil {
		return nil, err
	}
	e, _, err := blk.decode(seqno)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Scan calls fn, in order, for every entry from seqno from (1 if 0) up to
// the durable seqno at the time of the call, stopping at fn's first error,
// which it returns unchanged. Entries passed to fn may be retained.
func (l *Ledger) Scan(from ids.Seqno, fn func(e *Entry) error) error {
	from = max(from, 1)
	end := l.DurableSeqno()
	if from > end {
		return nil
	}
	return l.readRange(from, end, func(e *Entry, _ []byte) error { return fn(e) })
}

// ReadRange calls fn, in order, for each durable entry from seqno from to
// seqno to inclusive, with the entry and enc, its encoding exactly as it is
// stored (e's slices alias enc). Both may be retained after fn returns. It
// stops at fn's first error, which it returns unchanged. Entries are read in
// blocks of up to 1 MiB per file, not one read per entry. An empty range
// (from > to) calls nothing; a from of 0 or a to beyond DurableSeqno is
// ErrNotFound, reported before fn is called.
func (l *Ledger) ReadRange(from, to ids.Seqno, fn func(e *Entry, enc []byte) error) error {
	if err := l.check(); err != nil {
		return err
	}
	if from > to {
		return nil
	}
	if durable := l.DurableSeqno(); from == 0 || to > durable {
		return fmt.Errorf("%w: seqnos %d…%d (durable up to %d)", ErrNotFound, from, to, durable)
	}
	return l.readRange(from, to, fn)
}

func (l *Ledger) readRange(from, to ids.Seqno, fn func(e *Entry, enc []byte) error) error {
	for s := from; s <= to; {
		blk, err := l.readBlock(s, to, readBlock)
		if err != nil {
			return err
		}
		for range blk.count {
			e, enc, err := blk.decode(s)
			if err != nil {
				return err
			}
			if err := fn(&e, enc); err != nil {
				return err
			}
			s++
		}
	}
	return nil
}

// block is a run of consecutive entries read from one file.
type block struct {
	buf   []byte
	path  string
	off   int64 // file offset of buf[0]
	count int
}

// decode decodes the next entry of the block, which must be seqno, and
// advances past it. It also returns the entry's bytes.
func (b *block) decode(seqno ids.Seqno) (Entry, []byte, error) {
	e, n, err := DecodeEntry(b.buf)
	if err == nil && e.Seqno != seqno {
		err = corruptf("entry has seqno %d", e.Seqno)
	}
	if err != nil {
		return Entry{}, nil, &CorruptError{File: b.path, Offset: b.off, Seqno: seqno, Reason: reasonOf(err), Err: err}
	}
	enc := b.buf[:n:n]
	b.buf, b.off = b.buf[n:], b.off+int64(n)
	return e, enc, nil
}

// readBlock reads durable entries from seqno on, but none after last,
// within one file: as many as fit in maxBytes, but at least one.
func (l *Ledger) readBlock(seqno, last ids.Seqno, maxBytes int64) (block, error) {
	if err := l.check(); err != nil {
		return block{}, err
	}
	l.idx.RLock()
	if seqno == 0 || seqno > l.durable {
		durable := l.durable
		l.idx.RUnlock()
		return block{}, fmt.Errorf("%w: seqno %d (durable up to %d)", ErrNotFound, seqno, durable)
	}
	c := l.chunks[sort.Search(len(l.chunks), func(i int) bool { return l.chunks[i].last() >= seqno })]
	i := int(seqno - c.first)
	start := c.offsets[i]
	end := len(c.offsets) // entries [i, j) are read, j <= end
	if last < c.last() {
		end = int(last-c.first) + 1
	}
	j := i + 1
	for j < end && c.entryEnd(j)-start <= maxBytes {
		j++
	}
	blk := block{buf: make([]byte, c.entryEnd(j-1)-start), path: filepath.Join(l.dir, c.name()), off: start, count: j - i}
	h := c.h
	if h != nil {
		h.acquire()
	}
	l.idx.RUnlock()

	var err error
	if h != nil {
		_, err = h.f.ReadAt(blk.buf, start)
		h.release()
	} else {
		err = readAtPath(l.fs, blk.path, blk.buf, start)
	}
	if err != nil {
		if l.DurableSeqno() < seqno {
			return block{}, fmt.Errorf("%w: seqno %d was truncated during the read", ErrNotFound, seqno)
		}
		return block{}, fmt.Errorf("ledger: read %s at %d: %w", blk.path, start, err)
	}
	return blk, nil
}

func readAtPath(fsys vfs.FS, path string, buf []byte, off int64) error {
	f, err := fsys.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(buf, off)
	return err
}

// Close releases the ledger's files. Entries appended but not synced are
// dropped. It returns the poison error if the ledger is poisoned, and
// ErrClosed if already closed.
func (l *Ledger) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.closed.Swap(true) {
		return ErrClosed
	}
	l.releaseAll()
	l.mu.Lock()
	l.buf, l.pend = nil, nil
	l.mu.Unlock()
	if p := l.poison.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Ledger) releaseAll() {
	l.idx.Lock()
	defer l.idx.Unlock()
	for _, c := range l.chunks {
		if c.h != nil {
			c.h.release()
			c.h = nil
		}
	}
}

package ledger

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

const (
	filePrefix      = "ledger_"
	committedSuffix = ".committed"
	// readBlock is how much a sequential scan reads at once.
	readBlock = 1 << 20
)

// fileName is a parsed ledger file name: ledger_<first> (a tail file) or
// ledger_<first>-<last>.committed (a committed chunk).
type fileName struct {
	base      string
	first     ids.Seqno
	last      ids.Seqno // 0 for tail files, whose last seqno is found by reading
	committed bool
}

func tailName(first ids.Seqno) string {
	return filePrefix + strconv.FormatUint(uint64(first), 10)
}

func committedName(first, last ids.Seqno) string {
	return tailName(first) + "-" + strconv.FormatUint(uint64(last), 10) + committedSuffix
}

// parseName parses a directory entry name. ok is false for names that are
// not ledger files (no "ledger_" prefix); err is set for names that have the
// prefix but are not valid ledger file names.
func parseName(base string) (fn fileName, ok bool, err error) {
	rest, ok := strings.CutPrefix(base, filePrefix)
	if !ok {
		return fileName{}, false, nil
	}
	fn.base = base
	if r, committed := strings.CutSuffix(rest, committedSuffix); committed {
		f, l, found := strings.Cut(r, "-")
		if !found {
			return fileName{}, true, fmt.Errorf("committed chunk name %q lacks \"-<last>\"", base)
		}
		fn.committed = true
		if fn.first, err = parseSeqno(f); err == nil {
			fn.last, err = parseSeqno(l)
		}
		if err == nil && fn.last < fn.first {
			err = fmt.Errorf("last seqno %d before first %d", fn.last, fn.first)
		}
	} else {
		fn.first, err = parseSeqno(rest)
	}
	if err != nil {
		return fileName{}, true, fmt.Errorf("bad ledger file name %q: %v", base, err)
	}
	return fn, true, nil
}

// parseSeqno accepts only the canonical decimal form: digits, no sign, no
// leading zeros, at least 1. Anything looser would let two names denote one
// file.
func parseSeqno(s string) (ids.Seqno, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%q is not a canonical decimal seqno", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a seqno in [1, 2^64)", s)
	}
	return ids.Seqno(n), nil
}

// listDir returns the ledger files of dir sorted by first seqno, and the
// names of other entries, which the ledger ignores. A name with the ledger
// prefix that does not parse, a directory with a ledger name, or two files
// starting at the same seqno is a *CorruptError.
func listDir(fsys vfs.FS, dir string) (files []fileName, ignored []string, err error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: list %s: %w", dir, err)
	}
	for _, ent := range ents {
		fn, ok, perr := parseName(ent.Name())
		if !ok {
			ignored = append(ignored, ent.Name())
			continue
		}
		path := filepath.Join(dir, ent.Name())
		if perr != nil {
			return nil, nil, &CorruptError{File: path, Reason: "misnamed file: " + perr.Error()}
		}
		if ent.IsDir() {
			return nil, nil, &CorruptError{File: path, Reason: "a directory has a ledger file name"}
		}
		files = append(files, fn)
	}
	slices.SortFunc(files, func(a, b fileName) int { return cmp.Compare(a.first, b.first) })
	for i := 1; i < len(files); i++ {
		if files[i].first == files[i-1].first {
			return nil, nil, &CorruptError{
				File:   filepath.Join(dir, files[i].base),
				Seqno:  files[i].first,
				Reason: fmt.Sprintf("overlaps %s: both start at seqno %d", files[i-1].base, files[i].first),
			}
		}
	}
	return files, ignored, nil
}

// fileScan is the outcome of scanning one file.
type fileScan struct {
	count    int      // entries that decoded and followed on
	end      int64    // offset just past the last of them
	lastKind Kind     // kind of the last of them
	lastView ids.View // view of the last of them (the view passed in if none)
	bad      *CorruptError
	// torn is set when bad is a decode failure (ErrTruncated/ErrCorrupt),
	// the only damage a crash can cause, as opposed to a well-formed entry
	// out of sequence, which a crash cannot produce.
	torn bool
}

// scanFile decodes the entries of one file (size bytes) in order, expecting
// seqnos from next on and views not below view. It calls fn for each entry
// that decodes and follows on, stopping at the first that does not, which it
// describes in fileScan.bad. Entries passed to fn stay valid after fn
// returns. The error is an I/O error or fn's error.
func scanFile(f vfs.File, path string, size int64, next ids.Seqno, view ids.View, fn func(off int64, e *Entry) error) (fileScan, error) {
	r := blockReader{f: f, size: size}
	sc := fileScan{lastView: view}
	for sc.end < size {
		b, err := r.at(sc.end, frameLenSize)
		if err != nil {
			return sc, fmt.Errorf("ledger: read %s at %d: %w", path, sc.end, err)
		}
		if len(b) >= frameLenSize {
			// Read the whole frame if its length is plausible; DecodeEntry
			// judges implausible ones without it.
			if n := binary.BigEndian.Uint32(b); n <= MaxEntrySize-frameLenSize && len(b) < frameLenSize+int(n) {
				if b, err = r.at(sc.end, frameLenSize+int(n)); err != nil {
					return sc, fmt.Errorf("ledger: read %s at %d: %w", path, sc.end, err)
				}
			}
		}
		e, n, err := DecodeEntry(b)
		switch {
		case err != nil:
			sc.bad = &CorruptError{File: path, Offset: sc.end, Seqno: next, Reason: reasonOf(err), Err: err}
			sc.torn = true
		case e.Seqno != next && sc.count == 0:
			sc.bad = &CorruptError{File: path, Offset: sc.end, Seqno: next,
				Reason: fmt.Sprintf("misnamed file: its first entry has seqno %d", e.Seqno)}
		case e.Seqno != next:
			sc.bad = &CorruptError{File: path, Offset: sc.end, Seqno: next,
				Reason: fmt.Sprintf("entry has seqno %d", e.Seqno)}
		case e.View < sc.lastView:
			sc.bad = &CorruptError{File: path, Offset: sc.end, Seqno: next,
				Reason: fmt.Sprintf("view goes back from %d to %d", sc.lastView, e.View)}
		}
		if sc.bad != nil {
			return sc, nil
		}
		if err := fn(sc.end, &e); err != nil {
			return sc, err
		}
		sc.count++
		sc.end += int64(n)
		sc.lastKind, sc.lastView = e.Kind, e.View
		next++
	}
	return sc, nil
}

// blockReader reads a file sequentially in large blocks.
type blockReader struct {
	f    vfs.File
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

// at returns the file's bytes from off: at least min(n, size-off) of them,
// often more. Each refill allocates a fresh buffer, so slices returned
// earlier (and entries decoded from them) are never overwritten.
func (r *blockReader) at(off int64, n int) ([]byte, error) {
	if off >= r.off && off+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off:], nil
	}
	want := int64(max(n, readBlock))
	want = min(want, r.size-off)
	buf := make([]byte, want)
	got, err := r.f.ReadAt(buf, off)
	if int64(got) < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return nil, err
	}
	r.buf, r.off = buf, off
	return buf, nil
}

// checkChunk applies the rules for a file whose entries all decoded and
// followed on (sc.bad == nil, or a last tail already truncated to sc.end):
// a committed chunk holds exactly the seqnos its name says and ends on a
// signature; any other file except the last must be non-empty and end on a
// signature (it was only closed because a signature completed it).
func checkChunk(path string, fn fileName, sc fileScan, isLast bool) error {
	lastSeqno := fn.first + ids.Seqno(sc.count) - 1
	switch {
	case fn.committed && sc.count > 0 && lastSeqno != fn.last:
		return &CorruptError{File: path, Offset: sc.end, Seqno: lastSeqno + 1,
			Reason: fmt.Sprintf("committed chunk named to end at seqno %d ends at %d", fn.last, lastSeqno)}
	case (fn.committed || !isLast) && sc.count == 0:
		return &CorruptError{File: path, Seqno: fn.first, Reason: "chunk holds no entries"}
	case (fn.committed || !isLast) && sc.lastKind != KindSignature:
		return &CorruptError{File: path, Offset: sc.end, Seqno: lastSeqno,
			Reason: fmt.Sprintf("chunk ends on a %s entry, not a signature", sc.lastKind)}
	}
	return nil
}

// Position locates an entry on disk.
type Position struct {
	File   string // path of the file (dir joined with the file name)
	Offset int64  // byte offset of the entry's frame length field
}

// ScanDir reads a ledger directory offline without modifying it, for the
// auditor. It calls fn for every entry in seqno order with its position, and
// stops at fn's first error, which it returns unchanged. Any damage — an
// entry that does not decode (even a torn tail that Open would truncate), a
// seqno gap, a misnamed file, a chunk not ending on a signature — is a
// *CorruptError naming the file, offset and seqno. An empty last tail file
// (a crash between creating it and writing to it) is not damage. Files whose
// names lack the "ledger_" prefix are ignored. Entries passed to fn remain
// valid after fn returns.
func ScanDir(fsys vfs.FS, dir string, fn func(pos Position, e *Entry) error) error {
	files, _, err := listDir(fsys, dir)
	if err != nil {
		return err
	}
	var prevLast ids.Seqno
	var view ids.View
	for i, name := range files {
		path := filepath.Join(dir, name.base)
		if err := checkFollows(path, name, prevLast); err != nil {
			return err
		}
		sc, err := scanPath(fsys, path, name.first, view, func(off int64, e *Entry) error {
			return fn(Position{File: path, Offset: off}, e)
		})
		if err != nil {
			return err
		}
		if sc.bad != nil {
			return sc.bad
		}
		if err := checkChunk(path, name, sc, i == len(files)-1); err != nil {
			return err
		}
		prevLast = name.first + ids.Seqno(sc.count) - 1
		view = sc.lastView
	}
	return nil
}

// checkFollows reports a file that does not start right after the previous
// one ends.
func checkFollows(path string, name fileName, prevLast ids.Seqno) error {
	if name.first == prevLast+1 {
		return nil
	}
	reason := fmt.Sprintf("gap: file starts at seqno %d, previous entry is %d", name.first, prevLast)
	if name.first <= prevLast {
		reason = fmt.Sprintf("overlap: file starts at seqno %d, previous file ends at %d", name.first, prevLast)
	}
	return &CorruptError{File: path, Seqno: prevLast + 1, Reason: reason}
}

// scanPath opens path read-only and scans it.
func scanPath(fsys vfs.FS, path string, first ids.Seqno, view ids.View, fn func(off int64, e *Entry) error) (fileScan, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return fileScan{}, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	defer f.Close()
	size, err := vfs.Size(f)
	if err != nil {
		return fileScan{}, fmt.Errorf("ledger: stat %s: %w", path, err)
	}
	return scanFile(f, path, size, first, view, fn)
}

package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// WriteSet is everything one transaction writes, in canonical order: Maps
// sorted by Name with unique names and no empty MapWrites; each map's Writes
// sorted by Key with unique keys. Validate checks this. A WriteSet handed to
// a seal function or returned by Split, Merge or DecodeWriteSet shares
// memory with its source and with the store: treat it as read-only.
type WriteSet struct {
	Maps []MapWrites
}

// MapWrites is the writes to one map, sorted by Key, keys unique, never
// empty.
type MapWrites struct {
	Name   MapName
	Writes []Write
}

// Write sets Key to Value, or removes Key when Deleted (then Value is empty).
type Write struct {
	Key, Value []byte
	Deleted    bool
}

// Empty reports whether ws writes nothing; a nil ws is empty.
func (ws *WriteSet) Empty() bool { return ws == nil || len(ws.Maps) == 0 }

// Touches reports whether ws writes to map m.
func (ws *WriteSet) Touches(m MapName) bool { return len(ws.Writes(m)) > 0 }

// Writes returns ws's writes to map m, sorted by key (nil if none).
func (ws *WriteSet) Writes(m MapName) []Write {
	if ws == nil {
		return nil
	}
	i, found := slices.BinarySearchFunc(ws.Maps, m, func(mw MapWrites, m MapName) int { return strings.Compare(string(mw.Name), string(m)) })
	if !found {
		return nil
	}
	return ws.Maps[i].Writes
}

// Len returns the number of writes in ws.
func (ws *WriteSet) Len() int {
	if ws == nil {
		return 0
	}
	n := 0
	for i := range ws.Maps {
		n += len(ws.Maps[i].Writes)
	}
	return n
}

// Validate checks the invariants documented on WriteSet and the size limits.
// A nil ws is valid and empty.
func (ws *WriteSet) Validate() error {
	if ws == nil {
		return nil
	}
	for i := range ws.Maps {
		mw := &ws.Maps[i]
		if err := ValidateMapName(mw.Name); err != nil {
			return fmt.Errorf("%w: map %d: %w", ErrInvalidWriteSet, i, err)
		}
		if i > 0 && ws.Maps[i-1].Name >= mw.Name {
			return fmt.Errorf("%w: map %q follows %q: names must be strictly increasing", ErrInvalidWriteSet, mw.Name, ws.Maps[i-1].Name)
		}
		if len(mw.Writes) == 0 {
			return fmt.Errorf("%w: map %q has no writes", ErrInvalidWriteSet, mw.Name)
		}
		for j := range mw.Writes {
			w := &mw.Writes[j]
			if err := validateWrite(w); err != nil {
				return fmt.Errorf("%w: map %q key %s: %w", ErrInvalidWriteSet, mw.Name, quoteKey(w.Key), err)
			}
			if j > 0 && bytes.Compare(mw.Writes[j-1].Key, w.Key) >= 0 {
				return fmt.Errorf("%w: map %q: key %s follows %s: keys must be strictly increasing",
					ErrInvalidWriteSet, mw.Name, quoteKey(w.Key), quoteKey(mw.Writes[j-1].Key))
			}
		}
	}
	return nil
}

var errDeleteWithValue = errors.New("a delete carries a value")

func validateWrite(w *Write) error {
	if err := ValidateKey(w.Key); err != nil {
		return err
	}
	if w.Deleted && len(w.Value) != 0 {
		return errDeleteWithValue
	}
	return ValidateValue(w.Value)
}

// Split divides ws by MapName.IsPublic into two valid write sets, either
// possibly empty. They share Writes with ws.
func (ws *WriteSet) Split() (public, private *WriteSet) {
	public, private = &WriteSet{}, &WriteSet{}
	if ws == nil {
		return public, private
	}
	for _, mw := range ws.Maps {
		if mw.Name.IsPublic() {
			public.Maps = append(public.Maps, mw)
		} else {
			private.Maps = append(private.Maps, mw)
		}
	}
	return public, private
}

// Merge returns the union of a and b, which must be valid and must not both
// write the same key of the same map (ErrOverlap). It recombines the public
// and private halves of a ledger entry, so it accepts any pair that Split
// could produce, and more: the same map may appear in both with disjoint
// keys. A nil argument is empty. The result shares Writes with a and b.
func Merge(a, b *WriteSet) (*WriteSet, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("kv: merge: first write set: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("kv: merge: second write set: %w", err)
	}
	var am, bm []MapWrites
	if a != nil {
		am = a.Maps
	}
	if b != nil {
		bm = b.Maps
	}
	out := &WriteSet{Maps: make([]MapWrites, 0, len(am)+len(bm))}
	for len(am) > 0 || len(bm) > 0 {
		switch {
		case len(bm) == 0 || len(am) > 0 && am[0].Name < bm[0].Name:
			out.Maps, am = append(out.Maps, am[0]), am[1:]
		case len(am) == 0 || bm[0].Name < am[0].Name:
			out.Maps, bm = append(out.Maps, bm[0]), bm[1:]
		default:
			w, err := mergeWrites(am[0].Name, am[0].Writes, bm[0].Writes)
			if err != nil {
				return nil, err
			}
			out.Maps = append(out.Maps, MapWrites{Name: am[0].Name, Writes: w})
			am, bm = am[1:], bm[1:]
		}
	}
	return out, nil
}

func mergeWrites(m MapName, a, b []Write) ([]Write, error) {
	out := make([]Write, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch c := bytes.Compare(a[0].Key, b[0].Key); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			return nil, fmt.Errorf("%w: map %q key %s is written by both", ErrOverlap, m, quoteKey(a[0].Key))
		}
	}
	out = append(out, a...)
	return append(out, b...), nil
}

// Wire format version 1 (see doc.go for the diagram).
const (
	writeSetVersion1 = 0x01
	opPut            = 0x00
	opDelete         = 0x01
)

// Smallest encodings, used to reject counts the remaining input cannot hold
// before allocating for them: a write is at least an op byte and a key
// length; a map at least a name length, a 1-byte name, a write count and one
// write.
const (
	minWriteLen = 2
	minMapLen   = 3 + minWriteLen
)

// EncodedLen returns len(ws.AppendBinary(nil)).
func (ws *WriteSet) EncodedLen() int {
	n := 1 + uvarintLen(uint64(len(ws.maps())))
	for i := range ws.maps() {
		mw := &ws.Maps[i]
		n += uvarintLen(uint64(len(mw.Name))) + len(mw.Name) + uvarintLen(uint64(len(mw.Writes)))
		for j := range mw.Writes {
			w := &mw.Writes[j]
			n += 1 + uvarintLen(uint64(len(w.Key))) + len(w.Key)
			if !w.Deleted {
				n += uvarintLen(uint64(len(w.Value))) + len(w.Value)
			}
		}
	}
	return n
}

// AppendBinary appends the canonical version-1 encoding of ws to dst and
// returns the extended slice; it allocates only if dst lacks the room
// (EncodedLen). ws must be valid (Validate); the encoding of an invalid ws is
// rejected by DecodeWriteSet. A nil ws encodes as the empty write set.
func (ws *WriteSet) AppendBinary(dst []byte) []byte {
	dst = slices.Grow(dst, ws.EncodedLen())
	dst = append(dst, writeSetVersion1)
	dst = binary.AppendUvarint(dst, uint64(len(ws.maps())))
	for i := range ws.maps() {
		mw := &ws.Maps[i]
		dst = binary.AppendUvarint(dst, uint64(len(mw.Name)))
		dst = append(dst, mw.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(mw.Writes)))
		for j := range mw.Writes {
			w := &mw.Writes[j]
			if w.Deleted {
				dst = append(dst, opDelete)
			} else {
				dst = append(dst, opPut)
			}
			dst = binary.AppendUvarint(dst, uint64(len(w.Key)))
			dst = append(dst, w.Key...)
			if !w.Deleted {
				dst = binary.AppendUvarint(dst, uint64(len(w.Value)))
				dst = append(dst, w.Value...)
			}
		}
	}
	return dst
}

func (ws *WriteSet) maps() []MapWrites {
	if ws == nil {
		return nil
	}
	return ws.Maps
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeWriteSet decodes a version-1 encoding. It accepts exactly the
// encodings AppendBinary produces for valid write sets, so decoding and
// re-encoding is byte-identical: it rejects unknown versions and ops,
// non-minimal varints, unsorted or duplicate names and keys, empty maps,
// invalid names, sizes beyond the limits, truncation and trailing bytes, all
// as a *DecodeError. The result does not alias b: it points into one private
// copy of b, so the store may keep its keys and values.
func DecodeWriteSet(b []byte) (*WriteSet, error) {
	d := decoder{buf: bytes.Clone(b)}
	ws, err := d.writeSet()
	if err != nil {
		return nil, &DecodeError{Offset: d.off, Err: err}
	}
	return ws, nil
}

type decoder struct {
	buf []byte
	off int
}

func (d *decoder) rest() int { return len(d.buf) - d.off }

var (
	errTruncatedVarint  = errors.New("truncated varint")
	errVarintOverflow   = errors.New("varint overflows 64 bits")
	errNonMinimalVarint = errors.New("non-minimal varint")
)

// uvarint reads a minimal varint; what names it in errors.
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%s: %w", what, errTruncatedVarint)
	case n < 0:
		return 0, fmt.Errorf("%s: %w", what, errVarintOverflow)
	case n > 1 && d.buf[d.off+n-1] == 0:
		// A minimal varint never ends in a zero byte unless it is 0 itself.
		return 0, fmt.Errorf("%s: %w", what, errNonMinimalVarint)
	}
	d.off += n
	return v, nil
}

// count reads an element count and rejects one that the remaining input
// cannot hold at minLen bytes per element, so a forged count cannot make
// the decoder allocate more than the input's size.
func (d *decoder) count(what string, minLen int) (int, error) {
	start := d.off
	v, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(d.rest()/minLen) {
		rest := d.rest()
		d.off = start
		return 0, fmt.Errorf("%s %d: the %d remaining bytes cannot hold that many", what, v, rest)
	}
	return int(v), nil
}

// bytes reads a length-prefixed byte string of at most limit bytes; the
// result is capped so that appending to it cannot overwrite its neighbour.
// what and whatLen name the string and its length in errors (constants, so
// that decoding does not allocate labels).
func (d *decoder) bytes(what, whatLen string, limit int, tooLarge error) ([]byte, error) {
	start := d.off
	v, err := d.uvarint(whatLen)
	if err != nil {
		return nil, err
	}
	if v > uint64(limit) {
		d.off = start
		return nil, fmt.Errorf("%w: %s is %d bytes, limit is %d", tooLarge, what, v, limit)
	}
	if v > uint64(d.rest()) {
		return nil, fmt.Errorf("%s: %d bytes declared, %d remain", what, v, d.rest())
	}
	s := d.buf[d.off : d.off+int(v) : d.off+int(v)]
	d.off += int(v)
	return s, nil
}

func (d *decoder) writeSet() (*WriteSet, error) {
	if d.rest() == 0 {
		return nil, errors.New("empty input")
	}
	if v := d.buf[0]; v != writeSetVersion1 {
		return nil, fmt.Errorf("unknown version %d (this build knows %d)", v, writeSetVersion1)
	}
	d.off++
	nmaps, err := d.count("map count", minMapLen)
	if err != nil {
		return nil, err
	}
	ws := &WriteSet{}
	if nmaps > 0 {
		ws.Maps = make([]MapWrites, nmaps)
	}
	for i := range ws.Maps {
		start := d.off
		name, err := d.bytes("map name", "map name length", MaxMapNameLen, ErrInvalidMapName)
		if err != nil {
			return nil, err
		}
		mw := &ws.Maps[i]
		mw.Name = MapName(name)
		if err := ValidateMapName(mw.Name); err != nil {
			d.off = start
			return nil, err
		}
		if i > 0 && ws.Maps[i-1].Name >= mw.Name {
			d.off = start
			return nil, fmt.Errorf("map %q follows %q: names must be strictly increasing", mw.Name, ws.Maps[i-1].Name)
		}
		countAt := d.off
		nw, err := d.count("write count", minWriteLen)
		if err != nil {
			return nil, err
		}
		if nw == 0 {
			d.off = countAt
			return nil, fmt.Errorf("map %q has no writes", mw.Name)
		}
		mw.Writes = make([]Write, nw)
		for j := range mw.Writes {
			if err := d.write(mw, j); err != nil {
				return nil, err
			}
		}
	}
	if d.rest() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", d.rest())
	}
	return ws, nil
}

func (d *decoder) write(mw *MapWrites, j int) error {
	if d.rest() == 0 {
		return fmt.Errorf("map %q write %d: truncated", mw.Name, j)
	}
	w := &mw.Writes[j]
	switch op := d.buf[d.off]; op {
	case opPut:
	case opDelete:
		w.Deleted = true
	default:
		return fmt.Errorf("map %q write %d: unknown op %#02x", mw.Name, j, op)
	}
	d.off++
	start := d.off
	key, err := d.bytes("key", "key length", MaxKeyLen, ErrKeyTooLarge)
	if err != nil {
		return fmt.Errorf("map %q write %d: %w", mw.Name, j, err)
	}
	if j > 0 && bytes.Compare(mw.Writes[j-1].Key, key) >= 0 {
		d.off = start
		return fmt.Errorf("map %q: key %s follows %s: keys must be strictly increasing",
			mw.Name, quoteKey(key), quoteKey(mw.Writes[j-1].Key))
	}
	w.Key = key
	if !w.Deleted {
		if w.Value, err = d.bytes("value", "value length", MaxValueLen, ErrValueTooLarge); err != nil {
			return fmt.Errorf("map %q key %s: %w", mw.Name, quoteKey(key), err)
		}
	}
	return nil
}

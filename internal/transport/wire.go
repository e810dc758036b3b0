package transport

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// Wire constants (see doc.go for the format).
const (
	// WireVersion is the batch format this package writes and reads.
	WireVersion = 1
	// MaxBatchMessages bounds the messages in one batch.
	MaxBatchMessages = 4096
	// MaxBatchBytes bounds the encoded size of one batch, headers included.
	// A raft message is at least one entry however large (raft's
	// MaxSizePerMsg is a soft limit), so this also bounds the largest
	// ledger entry that can be replicated.
	MaxBatchBytes = 64 << 20

	batchHeaderLen = 5 // version u8 ‖ count u32
	msgHeaderLen   = 4 // length u32
)

// messageCost is what a message adds to a batch.
func messageCost(m *raftpb.Message) int { return msgHeaderLen + m.Size() }

// AppendBatch appends the encoding of msgs to dst. It refuses an empty
// batch and one over MaxBatchMessages or MaxBatchBytes (ErrBatchTooLarge).
func AppendBatch(dst []byte, msgs []raftpb.Message) ([]byte, error) {
	if len(msgs) == 0 {
		return dst, fmt.Errorf("%w: no messages", ErrMalformedBatch)
	}
	if len(msgs) > MaxBatchMessages {
		return dst, fmt.Errorf("%w: %d messages, the limit is %d", ErrBatchTooLarge, len(msgs), MaxBatchMessages)
	}
	total := batchHeaderLen
	for i := range msgs {
		total += messageCost(&msgs[i])
	}
	if total > MaxBatchBytes {
		return dst, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBatchTooLarge, total, MaxBatchBytes)
	}
	start := len(dst)
	dst = grow(dst, total)
	b := dst[start:]
	b[0] = WireVersion
	binary.BigEndian.PutUint32(b[1:5], uint32(len(msgs)))
	off := batchHeaderLen
	for i := range msgs {
		n := msgs[i].Size()
		binary.BigEndian.PutUint32(b[off:], uint32(n))
		off += msgHeaderLen
		if _, err := msgs[i].MarshalToSizedBuffer(b[off : off+n]); err != nil {
			return dst[:start], fmt.Errorf("transport: encoding message %d: %w", i, err)
		}
		off += n
	}
	return dst, nil
}

// grow extends b by n bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// DecodeBatch decodes one batch. It reads nothing beyond b, allocates in
// proportion to len(b) whatever the headers claim, and refuses a batch
// over the limits, a count of zero, a truncated message and trailing
// bytes. The messages do not alias b. It checks the format only: whether
// From and To are acceptable is the receiver's business.
func DecodeBatch(b []byte) ([]raftpb.Message, error) {
	if len(b) > MaxBatchBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBatchTooLarge, len(b), MaxBatchBytes)
	}
	if len(b) < batchHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformedBatch, len(b), batchHeaderLen)
	}
	if b[0] != WireVersion {
		return nil, fmt.Errorf("%w: version %d, this node speaks %d", ErrUnsupportedVersion, b[0], WireVersion)
	}
	count := binary.BigEndian.Uint32(b[1:5])
	switch {
	case count == 0:
		return nil, fmt.Errorf("%w: no messages", ErrMalformedBatch)
	case count > MaxBatchMessages:
		return nil, fmt.Errorf("%w: %d messages, the limit is %d", ErrBatchTooLarge, count, MaxBatchMessages)
	}
	rest := b[batchHeaderLen:]
	// Each message takes at least its length prefix: never trust count
	// for more than the bytes can hold.
	msgs := make([]raftpb.Message, 0, min(int(count), len(rest)/msgHeaderLen))
	for i := range int(count) {
		off := len(b) - len(rest)
		if len(rest) < msgHeaderLen {
			return nil, fmt.Errorf("%w: message %d at offset %d: truncated length", ErrMalformedBatch, i, off)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[msgHeaderLen:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: message %d at offset %d: length %d, only %d bytes left", ErrMalformedBatch, i, off, n, len(rest))
		}
		msgs = append(msgs, raftpb.Message{})
		if err := msgs[i].Unmarshal(rest[:n]); err != nil {
			return nil, fmt.Errorf("%w: message %d at offset %d: %v", ErrMalformedBatch, i, off, err)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after %d messages", ErrMalformedBatch, len(rest), count)
	}
	return msgs, nil
}

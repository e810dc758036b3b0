package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func sampleBatch() []raftpb.Message {
	return []raftpb.Message{
		{Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, LogTerm: 4, Index: 10, Commit: 9,
			Entries: []raftpb.Entry{{Term: 5, Index: 11, Data: []byte("a")}, {Term: 5, Index: 12, Type: raftpb.EntryConfChangeV2, Data: []byte{1, 2}}}},
		{Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 9, Context: []byte("ctx")},
		{Type: raftpb.MsgVote, From: 1, To: 2, Term: 6, LogTerm: 5, Index: 12},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	msgs := sampleBatch()
	prefix := []byte("keep")
	b, err := AppendBatch(prefix, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("AppendBatch lost dst")
	}
	body := b[len(prefix):]
	if body[0] != WireVersion || binary.BigEndian.Uint32(body[1:5]) != 3 {
		t.Fatalf("header % x", body[:5])
	}
	got, err := DecodeBatch(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if got[i].String() != msgs[i].String() {
			t.Errorf("message %d: %v, want %v", i, got[i], msgs[i])
		}
	}
	// The messages do not alias the input.
	clear(body)
	if string(got[0].Entries[0].Data) != "a" || string(got[1].Context) != "ctx" {
		t.Fatal("decoded messages alias the batch")
	}
}

func TestDecodeBatchRefuses(t *testing.T) {
	valid, err := AppendBatch(nil, sampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	header := func(version byte, count uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{version}, count)
	}
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":            {nil, ErrMalformedBatch},
		"short header":     {[]byte{1, 0, 0}, ErrMalformedBatch},
		"version 0":        {header(0, 1), ErrUnsupportedVersion},
		"version 2":        {append(header(2, 1), valid[5:]...), ErrUnsupportedVersion},
		"count 0":          {header(1, 0), ErrMalformedBatch},
		"count over limit": {header(1, MaxBatchMessages+1), ErrBatchTooLarge},
		"count huge":       {header(1, 0xffffffff), ErrBatchTooLarge},
		"count too high":   {append(header(1, 4), valid[5:]...), ErrMalformedBatch},
		"count too low":    {append(header(1, 2), valid[5:]...), ErrMalformedBatch},
		"truncated length": {append(header(1, 1), 0, 0), ErrMalformedBatch},
		"length past end":  {append(header(1, 1), 0, 0, 0, 9, 8), ErrMalformedBatch},
		"length huge":      {append(header(1, 1), 0xff, 0xff, 0xff, 0xff), ErrMalformedBatch},
		"truncated":        {valid[:len(valid)-1], ErrMalformedBatch},
		"trailing byte":    {append(bytes.Clone(valid), 0), ErrMalformedBatch},
		"bad protobuf":     {append(header(1, 1), 0, 0, 0, 2, 0xff, 0xff), ErrMalformedBatch},
		"over byte limit":  {make([]byte, MaxBatchBytes+1), ErrBatchTooLarge},
	} {
		if _, err := DecodeBatch(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestAppendBatchLimits(t *testing.T) {
	if _, err := AppendBatch(nil, nil); !errors.Is(err, ErrMalformedBatch) {
		t.Errorf("empty: %v", err)
	}
	if _, err := AppendBatch(nil, make([]raftpb.Message, MaxBatchMessages+1)); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too many: %v", err)
	}
	big := []raftpb.Message{{Type: raftpb.MsgApp, Entries: []raftpb.Entry{{Data: make([]byte, MaxBatchBytes)}}}}
	if _, err := AppendBatch(nil, big); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too large: %v", err)
	}
	full := make([]raftpb.Message, MaxBatchMessages)
	if _, err := AppendBatch(nil, full); err != nil {
		t.Errorf("exactly MaxBatchMessages: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	valid, err := AppendBatch(nil, sampleBatch())
	if err != nil {
		f.Fatal(err)
	}
	one, _ := AppendBatch(nil, []raftpb.Message{{}})
	f.Add(valid)
	f.Add(one)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeBatch(b)
		if err != nil {
			if msgs != nil {
				t.Fatal("messages with an error")
			}
			return
		}
		if len(msgs) == 0 || len(msgs) > MaxBatchMessages {
			t.Fatalf("%d messages decoded", len(msgs))
		}
		// What decodes re-encodes to a batch that decodes to the same
		// encoding (the input itself may use a non-canonical protobuf form).
		again, err := AppendBatch(nil, msgs)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		msgs2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		again2, err := AppendBatch(nil, msgs2)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not stable: %v", err)
		}
	})
}

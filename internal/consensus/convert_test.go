package consensus

import (
	"bytes"
	"errors"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
)

func TestConversionTable(t *testing.T) {
	rng := seeded(1)
	tx := txEntry(rng, ledger.KindTx, 3, 9)
	cc := addVoter(4, 10, 7)
	cases := []struct {
		raft   raftpb.Entry
		kind   ledger.Kind
		public []byte // for KindRaft
	}{
		{tx, ledger.KindTx, nil},
		{txEntry(rng, ledger.KindSignature, 3, 10), ledger.KindSignature, nil},
		{raftpb.Entry{Term: 5, Index: 11}, ledger.KindRaft, []byte{ledger.RaftEmpty}},
		{cc, ledger.KindRaft, append([]byte{ledger.RaftConfChangeV2}, cc.Data...)},
		{raftpb.Entry{Term: 5, Index: 12, Type: raftpb.EntryConfChangeV2}, ledger.KindRaft, []byte{ledger.RaftConfChangeV2}},
	}
	for _, c := range cases {
		e, err := ToLedger(c.raft)
		if err != nil {
			t.Fatalf("ToLedger(%s): %v", describe([]raftpb.Entry{c.raft}), err)
		}
		if e.Kind != c.kind || uint64(e.View) != c.raft.Term || uint64(e.Seqno) != c.raft.Index {
			t.Fatalf("ToLedger(%s) = %v %d.%d", describe([]raftpb.Entry{c.raft}), e.Kind, e.View, e.Seqno)
		}
		if c.kind == ledger.KindRaft {
			if !bytes.Equal(e.Public, c.public) || e.Private != nil || e.CommitEvidenceDigest != [32]byte{} || e.ClaimsDigest != [32]byte{} {
				t.Fatalf("ToLedger(%s) = %+v", describe([]raftpb.Entry{c.raft}), e)
			}
		} else if !bytes.Equal(e.AppendBinary(nil), c.raft.Data) {
			t.Fatalf("ToLedger(%s) does not encode back to the data", describe([]raftpb.Entry{c.raft}))
		}
		r, err := ToRaft(e)
		if err != nil || !sameEntry(r, c.raft) {
			t.Fatalf("ToRaft(ToLedger(%s)) = %s, %v", describe([]raftpb.Entry{c.raft}), describe([]raftpb.Entry{r}), err)
		}
	}
}

func TestConversionErrors(t *testing.T) {
	rng := seeded(2)
	tx := txEntry(rng, ledger.KindTx, 3, 9)
	raftKind := (&ledger.Entry{Kind: ledger.KindRaft, View: 3, Seqno: 9, Public: []byte{ledger.RaftEmpty}}).AppendBinary(nil)
	v1cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 1}
	v1, _ := v1cc.Marshal()
	bad := map[string]raftpb.Entry{
		"term differs":      {Term: 4, Index: 9, Data: tx.Data},
		"index differs":     {Term: 3, Index: 8, Data: tx.Data},
		"not an entry":      {Term: 3, Index: 9, Data: []byte("hello")},
		"torn entry":        {Term: 3, Index: 9, Data: tx.Data[:len(tx.Data)-1]},
		"two entries":       {Term: 3, Index: 9, Data: append(append([]byte{}, tx.Data...), tx.Data...)},
		"raft kind in data": {Term: 3, Index: 9, Data: raftKind},
		"v1 conf change":    {Term: 3, Index: 9, Type: raftpb.EntryConfChange, Data: v1},
		"unknown type":      {Term: 3, Index: 9, Type: 7},
		"bad conf change":   {Term: 3, Index: 9, Type: raftpb.EntryConfChangeV2, Data: []byte{0xff}},
		"term 0":            {Term: 0, Index: 9},
		"index 0":           {Term: 3, Index: 0, Type: raftpb.EntryConfChangeV2},
		"flipped data byte": {Term: 3, Index: 9, Data: append(append([]byte{}, tx.Data[:20]...), append([]byte{tx.Data[20] ^ 1}, tx.Data[21:]...)...)},
	}
	for name, r := range bad {
		_, err := ToLedger(r)
		var ee *EntryError
		if !errors.As(err, &ee) || !errors.Is(err, ErrBadEntry) || ee.Index != r.Index || ee.Term != r.Term {
			t.Errorf("%s: %v; want *EntryError naming index %d, term %d", name, err, r.Index, r.Term)
		}
	}
	if _, err := ToLedger(bad["not an entry"]); !errors.Is(err, ledger.ErrCorrupt) {
		t.Errorf("a decode failure should wrap the ledger's error: %v", err)
	}
	badLedger := map[string]*ledger.Entry{
		"view 0":          {Kind: ledger.KindTx, Seqno: 1},
		"unknown kind":    {Kind: 9, View: 1, Seqno: 1},
		"raft, no type":   {Kind: ledger.KindRaft, View: 1, Seqno: 1},
		"bad conf change": {Kind: ledger.KindRaft, View: 1, Seqno: 1, Public: []byte{ledger.RaftConfChangeV2, 0xff}},
	}
	for name, e := range badLedger {
		if _, err := ToRaft(e); !errors.Is(err, ErrBadEntry) {
			t.Errorf("ToRaft %s: %v; want ErrBadEntry", name, err)
		}
	}
}

func FuzzToLedger(f *testing.F) {
	rng := seeded(3)
	for _, r := range []raftpb.Entry{
		txEntry(rng, ledger.KindTx, 3, 9),
		txEntry(rng, ledger.KindSignature, 1, 1),
		{Term: 2, Index: 5},
		addVoter(2, 6, 3),
		{Term: 2, Index: 7, Type: raftpb.EntryConfChangeV2},
		{Term: 2, Index: 7, Type: raftpb.EntryConfChange, Data: []byte{8, 1}},
		{Term: 1<<64 - 1, Index: 1<<64 - 1, Data: []byte{0, 0, 0, 94}},
	} {
		f.Add(uint8(r.Type), r.Term, r.Index, r.Data)
	}
	f.Fuzz(func(t *testing.T, typ uint8, term, index uint64, data []byte) {
		r := raftpb.Entry{Type: raftpb.EntryType(typ), Term: term, Index: index, Data: data}
		e, err := ToLedger(r)
		if err != nil {
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Index != index || ee.Term != term {
				t.Fatalf("error %v is not an *EntryError naming the entry", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("ToLedger returned an invalid entry: %v", err)
		}
		back, err := ToRaft(e)
		if err != nil || !sameEntry(back, r) {
			t.Fatalf("ToRaft(ToLedger(r)) = %s, %v; want %s", describe([]raftpb.Entry{back}), err, describe([]raftpb.Entry{r}))
		}
		// What a backup stores is what it was sent, byte for byte.
		if r.Type == raftpb.EntryNormal && len(data) > 0 && !bytes.Equal(e.AppendBinary(nil), data) {
			t.Fatal("stored bytes differ from the entry's data")
		}
	})
}

// FuzzToRaft builds ledger entries from fuzzed fields (a checksummed byte
// encoding would hide them from the fuzzer) and checks that ToRaft either
// refuses them or is inverted by ToLedger.
func FuzzToRaft(f *testing.F) {
	rng := seeded(4)
	seeds := []*ledger.Entry{
		{Kind: ledger.KindTx, View: 3, Seqno: 9, Public: randBytes(rng, 40), Private: randBytes(rng, 20), CommitEvidenceDigest: [32]byte{1}},
		{Kind: ledger.KindSignature, View: 1, Seqno: 1, Public: randBytes(rng, 40), ClaimsDigest: [32]byte{2}},
		{Kind: ledger.KindRaft, View: 2, Seqno: 5, Public: []byte{ledger.RaftEmpty}},
		{Kind: ledger.KindRaft, View: 2, Seqno: 6, Public: append([]byte{ledger.RaftConfChangeV2}, addVoter(2, 6, 3).Data...)},
		{Kind: ledger.KindRaft, View: 2, Seqno: 7, Public: []byte{ledger.RaftConfChangeV2}},
		{Kind: ledger.KindRaft, View: 2, Seqno: 7, Public: []byte{ledger.RaftConfChangeV2, 0xff, 0x01}},
		{Kind: ledger.KindRaft, View: 2, Seqno: 7, Public: []byte{1, 8, 1}},
	}
	for _, e := range seeds {
		f.Add(uint8(e.Kind), uint64(e.View), uint64(e.Seqno), e.Public, e.Private, e.CommitEvidenceDigest[0], e.ClaimsDigest[0])
	}
	f.Fuzz(func(t *testing.T, kind uint8, view, seqno uint64, public, private []byte, ce, claims byte) {
		e := &ledger.Entry{Kind: ledger.Kind(kind), View: ids.View(view), Seqno: ids.Seqno(seqno), Public: public, Private: private}
		e.CommitEvidenceDigest[7], e.ClaimsDigest[31] = ce, claims
		r, err := ToRaft(e)
		if err != nil {
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Index != seqno || ee.Term != view {
				t.Fatalf("error %v is not an *EntryError naming the entry", err)
			}
			return
		}
		if r.Term != view || r.Index != seqno {
			t.Fatalf("ToRaft moved the entry to %d.%d", r.Term, r.Index)
		}
		back, err := ToLedger(r)
		if err != nil {
			t.Fatalf("ToLedger(ToRaft(e)): %v", err)
		}
		if !bytes.Equal(back.AppendBinary(nil), e.AppendBinary(nil)) {
			t.Fatalf("ToLedger(ToRaft(e)) = %+v; want %+v", back, e)
		}
	})
}

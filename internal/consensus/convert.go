package consensus

import (
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
)

// ToRaft returns the raft form of the ledger entry e:
//
//   - KindTx and KindSignature: an EntryNormal whose Data is the whole
//     framed entry (e.AppendBinary).
//   - KindRaft with type ledger.RaftEmpty: an EntryNormal without data.
//   - KindRaft with type ledger.RaftConfChangeV2: an EntryConfChangeV2
//     whose Data is the bytes after the type byte (aliasing e.Public), nil
//     if there are none; they must unmarshal as a raftpb.ConfChangeV2.
//
// Term is e.View and Index e.Seqno. An entry that does not validate
// (ledger.Entry.Validate) or whose configuration change does not unmarshal
// is an *EntryError. ToRaft inverts ToLedger: ToLedger(ToRaft(e)) equals e.
func ToRaft(e *ledger.Entry) (raftpb.Entry, error) {
	return toRaft(e, nil)
}

// toRaft is ToRaft with enc, when not nil, the encoding of e as read from
// the ledger, used as the data of a transaction or signature entry instead
// of encoding e again.
func toRaft(e *ledger.Entry, enc []byte) (raftpb.Entry, error) {
	r := raftpb.Entry{Term: uint64(e.View), Index: uint64(e.Seqno), Type: raftpb.EntryNormal}
	if err := e.Validate(); err != nil {
		return raftpb.Entry{}, &EntryError{Index: r.Index, Term: r.Term, Reason: "invalid ledger entry", Err: err}
	}
	switch e.Kind {
	case ledger.KindTx, ledger.KindSignature:
		if enc == nil {
			enc = e.AppendBinary(nil)
		}
		r.Data = enc
	case ledger.KindRaft:
		// Validate checked the type byte and that an empty entry has no data.
		if e.Public[0] == ledger.RaftConfChangeV2 {
			r.Type = raftpb.EntryConfChangeV2
			if len(e.Public) > 1 {
				r.Data = e.Public[1:]
			}
			var cc raftpb.ConfChangeV2
			if err := cc.Unmarshal(r.Data); err != nil {
				return raftpb.Entry{}, &EntryError{Index: r.Index, Term: r.Term, Reason: "configuration change does not unmarshal", Err: err}
			}
		}
	default: // Validate refuses unknown kinds
		return raftpb.Entry{}, &EntryError{Index: r.Index, Term: r.Term, Reason: "kind " + e.Kind.String()}
	}
	return r, nil
}

// ToLedger returns the ledger form of the raft entry r, the inverse of
// ToRaft:
//
//   - EntryNormal with data: Data must decode (ledger.DecodeEntry) to
//     exactly one KindTx or KindSignature entry, with no byte left over,
//     whose View is r.Term and Seqno r.Index. The entry's slices alias
//     r.Data; appending it to a ledger writes back exactly r.Data.
//   - EntryNormal without data: a KindRaft entry, Public = [RaftEmpty].
//   - EntryConfChangeV2: a KindRaft entry, Public = [RaftConfChangeV2] ‖
//     Data; Data must unmarshal as a raftpb.ConfChangeV2.
//
// Anything else (EntryConfChange, the version 1 change Coco does not use; a
// term or index of 0) is an *EntryError naming r's index and term.
func ToLedger(r raftpb.Entry) (*ledger.Entry, error) {
	bad := func(reason string, err error) (*ledger.Entry, error) {
		return nil, &EntryError{Index: r.Index, Term: r.Term, Reason: reason, Err: err}
	}
	var e *ledger.Entry
	switch {
	case r.Type == raftpb.EntryNormal && len(r.Data) > 0:
		d, n, err := ledger.DecodeEntry(r.Data)
		switch {
		case err != nil:
			return bad("data is not a ledger entry", err)
		case n != len(r.Data):
			return bad("data holds more than one ledger entry", nil)
		case d.Kind != ledger.KindTx && d.Kind != ledger.KindSignature:
			return bad("data holds a ledger entry of kind "+d.Kind.String(), nil)
		case d.View != ids.View(r.Term) || d.Seqno != ids.Seqno(r.Index):
			return bad("data holds ledger entry "+ids.TxID{View: d.View, Seqno: d.Seqno}.String()+", not "+ids.TxID{View: ids.View(r.Term), Seqno: ids.Seqno(r.Index)}.String(), nil)
		}
		e = &d
	case r.Type == raftpb.EntryNormal:
		e = &ledger.Entry{Kind: ledger.KindRaft, View: ids.View(r.Term), Seqno: ids.Seqno(r.Index), Public: []byte{ledger.RaftEmpty}}
	case r.Type == raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(r.Data); err != nil {
			return bad("configuration change does not unmarshal", err)
		}
		pub := make([]byte, 1+len(r.Data))
		pub[0] = ledger.RaftConfChangeV2
		copy(pub[1:], r.Data)
		e = &ledger.Entry{Kind: ledger.KindRaft, View: ids.View(r.Term), Seqno: ids.Seqno(r.Index), Public: pub}
	default:
		return bad("unsupported entry type "+r.Type.String(), nil)
	}
	if err := e.Validate(); err != nil {
		return bad("invalid ledger entry", err)
	}
	return e, nil
}

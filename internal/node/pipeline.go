package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/receipt"
)

// commitTx commits tx (which must have writes) and returns its TxID. The
// entry is in the ledger's buffer, not yet durable.
func (n *Node) commitTx(tx *kv.Tx, claims [32]byte) (ids.TxID, error) {
	if err := n.failed(); err != nil {
		return ids.TxID{}, err
	}
	seqno, err := n.store.Commit(tx, func(seqno ids.Seqno, ws *kv.WriteSet) error {
		return n.sealTx(seqno, ws, claims)
	})
	if err != nil {
		return ids.TxID{}, err
	}
	n.signalFlusher()
	return ids.TxID{View: n.view, Seqno: seqno}, nil
}

// sealTx turns a write set into a ledger entry and a Merkle leaf. It runs
// under the kv commit mutex: it is the one place that fixes the order of
// everything.
func (n *Node) sealTx(seqno ids.Seqno, ws *kv.WriteSet, claims [32]byte) error {
	pub, priv := ws.Split()
	id := ids.TxID{View: n.view, Seqno: seqno}
	e := ledger.Entry{
		Kind:                 ledger.KindTx,
		View:                 n.view,
		Seqno:                seqno,
		Public:               pub.AppendBinary(nil),
		CommitEvidenceDigest: n.secret.CommitEvidenceDigest(id),
		ClaimsDigest:         claims,
	}
	if !priv.Empty() {
		ct, err := n.secret.Seal(nil, n.view, seqno, priv.AppendBinary(nil), e.AppendAAD(nil))
		if err != nil {
			return err
		}
		e.Private = ct
	}
	return n.appendEntry(&e)
}

func (n *Node) appendEntry(e *ledger.Entry) error {
	if err := n.ledger.Append(e); err != nil {
		n.fail(err)
		return err
	}
	leaf := e.Leaf()
	n.tree.Append(merkle.LeafHash(leaf[:]))
	n.views.note(e.View, e.Seqno)
	return nil
}

// appendSignature appends a signature entry over the Merkle root of every
// entry before it, signed with the service key.
func (n *Node) appendSignature() error {
	_, err := n.store.Sequence(func(seqno ids.Seqno) error {
		treeSize := uint64(seqno) - 1
		root := n.tree.Root()
		signed, err := receipt.SignRoot(n.rand, n.serviceKey, root)
		if err != nil {
			return fmt.Errorf("node: sign root: %w", err)
		}
		rec := ledger.SignatureRecord{View: n.view, Seqno: seqno, TreeSize: treeSize, Root: root,
			SignedRoot: signed, NodeID: string(n.nodeID), NodeCert: n.nodeCert.Raw}
		pub, err := rec.Marshal()
		if err != nil {
			return err
		}
		e := ledger.Entry{Kind: ledger.KindSignature, View: n.view, Seqno: seqno, Public: pub,
			CommitEvidenceDigest: n.secret.CommitEvidenceDigest(ids.TxID{View: n.view, Seqno: seqno})}
		if err := n.appendEntry(&e); err != nil {
			return err
		}
		n.sigs.add(seqno, treeSize, signed)
		return nil
	})
	return err
}

func (n *Node) signalFlusher() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// flushLoop is the group-commit goroutine: each round makes everything
// appended so far durable with one fsync, signing first when due.
func (n *Node) flushLoop() {
	defer close(n.flusherDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-n.stop:
			if n.failed() == nil {
				if err := n.flushOnce(true); err != nil {
					n.log.Error("final flush failed", "err", err)
				}
			}
			return
		case <-n.wake:
		case <-timer.C:
		}
		if n.failed() != nil {
			continue
		}
		if err := n.flushOnce(false); err != nil {
			n.log.Error("ledger flush failed; node stops accepting writes", "err", err)
			continue
		}
		if wait, pending := n.signatureWait(); pending {
			timer.Reset(wait)
		}
	}
}

// signatureWait says how long until the next signature is due while
// unsigned entries are durable.
func (n *Node) signatureWait() (time.Duration, bool) {
	first, ok := n.sigs.firstUnsignedSince()
	if !ok || n.store.Seqno() == n.sigs.lastSeqno() {
		return 0, false
	}
	return max(0, first.Add(time.Duration(n.cfg.Ledger.SignatureIntervalMS)*time.Millisecond).Sub(n.clock.Now())), true
}

func (n *Node) signatureDue(force bool) bool {
	unsigned := uint64(n.store.Seqno() - n.sigs.lastSeqno())
	if unsigned == 0 {
		return false
	}
	if force || n.cfg.Ledger.SignatureIntervalMS == 0 || unsigned >= uint64(n.cfg.Ledger.SignatureIntervalTxs) {
		return true
	}
	now := n.clock.Now()
	first, ok := n.sigs.firstUnsignedSince()
	if !ok {
		n.sigs.markUnsigned(now)
		return false
	}
	return now.Sub(first) >= time.Duration(n.cfg.Ledger.SignatureIntervalMS)*time.Millisecond
}

// flushOnce signs if due (or forced), makes the ledger durable and advances
// the commit point.
func (n *Node) flushOnce(forceSign bool) error {
	if n.signatureDue(forceSign) {
		if err := n.appendSignature(); err != nil {
			n.fail(err)
			return err
		}
	}
	start := n.clock.Now()
	before := n.durable.Load()
	durable, err := n.ledger.Sync()
	if err != nil {
		n.fail(err)
		return err
	}
	if uint64(durable) > before {
		n.metrics.observeSync(n.clock.Now().Sub(start), uint64(durable)-before)
	}
	n.durable.Store(uint64(durable))
	sig := n.sigs.lastAtOrBefore(durable)
	if uint64(sig) > n.committed.Load() {
		n.committed.Store(uint64(sig))
		// Committed states can never be rolled back: let the store forget
		// the ones before.
		n.store.Compact(sig)
		n.broadcastCommit()
		if err := n.ledger.SetCommitted(sig); err != nil {
			n.fail(err)
			return err
		}
	}
	return nil
}

func (n *Node) broadcastCommit() {
	next := make(chan struct{})
	old := n.committedCh.Swap(&next)
	close(*old)
}

func (n *Node) fail(err error) {
	wrapped := fmt.Errorf("%w: %w", ErrFailed, err)
	if n.failure.CompareAndSwap(nil, &wrapped) {
		n.log.Error("node failed: it no longer accepts writes", "err", err)
		n.broadcastCommit()
	}
}

func (n *Node) failed() error {
	if p := n.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// errCommitInvalid reports that a transaction a client waits for was lost.
var errCommitInvalid = errors.New("node: transaction became invalid")

// waitCommitted blocks until id is committed, invalid, the node fails or ctx
// ends.
func (n *Node) waitCommitted(ctx context.Context, id ids.TxID) error {
	for {
		ch := n.committedCh.Load()
		switch n.txStatus(id) {
		case ids.StatusCommitted:
			return nil
		case ids.StatusInvalid:
			return errCommitInvalid
		}
		if err := n.failed(); err != nil {
			return err
		}
		select {
		case <-*ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *Node) txStatus(id ids.TxID) ids.TxStatus {
	last := n.store.Seqno()
	if id.Seqno > last {
		if id.View < n.view {
			// Views before this one have ended; whatever they executed
			// beyond our ledger is gone for good.
			return ids.StatusInvalid
		}
		return ids.StatusUnknown
	}
	if n.views.viewAt(id.Seqno) != id.View {
		return ids.StatusInvalid
	}
	if uint64(id.Seqno) <= n.committed.Load() {
		return ids.StatusCommitted
	}
	return ids.StatusPending
}

// lastCommitted returns the TxID of the last committed entry.
func (n *Node) lastCommitted() ids.TxID {
	s := ids.Seqno(n.committed.Load())
	if s == 0 {
		return ids.TxID{}
	}
	return ids.TxID{View: n.views.viewAt(s), Seqno: s}
}

// viewHistory records the first seqno of every view in the ledger, so the
// view of any seqno is a binary search away.
type viewHistory struct {
	mu     sync.RWMutex
	starts []viewStart
}

type viewStart struct {
	view  ids.View
	first ids.Seqno
}

// note records that seqno was written in view; seqnos arrive in order.
func (h *viewHistory) note(view ids.View, seqno ids.Seqno) {
	h.mu.RLock()
	same := len(h.starts) > 0 && h.starts[len(h.starts)-1].view == view
	h.mu.RUnlock()
	if same {
		return
	}
	h.mu.Lock()
	h.starts = append(h.starts, viewStart{view: view, first: seqno})
	h.mu.Unlock()
}

func (h *viewHistory) viewAt(seqno ids.Seqno) ids.View {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i := sort.Search(len(h.starts), func(i int) bool { return h.starts[i].first > seqno })
	if i == 0 {
		return 0
	}
	return h.starts[i-1].view
}

func (h *viewHistory) last() ids.View {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.starts) == 0 {
		return 0
	}
	return h.starts[len(h.starts)-1].view
}

// sigIndex lists the signature entries of the ledger in seqno order, with
// the signed root each receipt under it reuses.
type sigIndex struct {
	mu   sync.RWMutex
	sigs []signature
	// unsignedSince is when the flusher first saw unsigned entries since the
	// last signature (for interval-based signing).
	unsignedSince time.Time
}

type signature struct {
	seqno      ids.Seqno
	treeSize   uint64
	signedRoot []byte
}

func (x *sigIndex) add(seqno ids.Seqno, treeSize uint64, signedRoot []byte) {
	x.mu.Lock()
	x.sigs = append(x.sigs, signature{seqno: seqno, treeSize: treeSize, signedRoot: signedRoot})
	x.unsignedSince = time.Time{}
	x.mu.Unlock()
}

func (x *sigIndex) lastSeqno() ids.Seqno {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.sigs) == 0 {
		return 0
	}
	return x.sigs[len(x.sigs)-1].seqno
}

func (x *sigIndex) markUnsigned(t time.Time) {
	x.mu.Lock()
	x.unsignedSince = t
	x.mu.Unlock()
}

func (x *sigIndex) firstUnsignedSince() (time.Time, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.unsignedSince, !x.unsignedSince.IsZero()
}

// lastAtOrBefore returns the seqno of the last signature at or before s.
func (x *sigIndex) lastAtOrBefore(s ids.Seqno) ids.Seqno {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.sigs), func(i int) bool { return x.sigs[i].seqno > s })
	if i == 0 {
		return 0
	}
	return x.sigs[i-1].seqno
}

// covering returns the first signature after seqno s: the one whose root
// includes s.
func (x *sigIndex) covering(s ids.Seqno) (signature, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.sigs), func(i int) bool { return x.sigs[i].seqno > s })
	if i == len(x.sigs) {
		return signature{}, false
	}
	return x.sigs[i], true
}

package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/consensus"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/receipt"
)

// ErrNotPrimary reports a write refused because this node is not (or is no
// longer) the primary; the client retries, on any node.
var ErrNotPrimary = errors.New("node: not the primary")

// commitTx commits tx (which must have writes) on the primary and proposes
// its ledger entry to raft. It returns the TxID; the entry is not yet
// durable.
func (n *Node) commitTx(tx *kv.Tx, claims [32]byte) (ids.TxID, error) {
	if err := n.failed(); err != nil {
		return ids.TxID{}, err
	}
	n.orderMu.Lock()
	view := n.primaryView
	if view == 0 {
		n.orderMu.Unlock()
		return ids.TxID{}, ErrNotPrimary
	}
	seqno, err := n.store.Commit(tx, func(seqno ids.Seqno, ws *kv.WriteSet) error {
		return n.sealTx(view, seqno, ws, claims)
	})
	n.orderMu.Unlock()
	if err != nil {
		return ids.TxID{}, err
	}
	n.signalLoop()
	return ids.TxID{View: view, Seqno: seqno}, nil
}

// sealTx turns a write set into a ledger entry, proposes it and appends its
// Merkle leaf. It runs under orderMu and the kv commit mutex: it is the one
// place that fixes the order of everything on the primary.
func (n *Node) sealTx(view ids.View, seqno ids.Seqno, ws *kv.WriteSet, claims [32]byte) error {
	pub, priv := ws.Split()
	id := ids.TxID{View: view, Seqno: seqno}
	secret := n.secrets.At(seqno)
	e := ledger.Entry{
		Kind:                 ledger.KindTx,
		View:                 view,
		Seqno:                seqno,
		Public:               pub.AppendBinary(nil),
		CommitEvidenceDigest: secret.CommitEvidenceDigest(id),
		ClaimsDigest:         claims,
	}
	if !priv.Empty() {
		ct, err := secret.Seal(nil, view, seqno, priv.AppendBinary(nil), e.AppendAAD(nil))
		if err != nil {
			return err
		}
		e.Private = ct
	}
	next, err := rekeyIn(seqno, priv)
	if err != nil {
		return err
	}
	if err := n.propose(&e); err != nil {
		return err
	}
	if next != nil {
		// The entry is proposed: from here a failure is the node's.
		if err := n.secrets.Add(seqno+1, next); err != nil {
			n.fail(err)
			return err
		}
	}
	return nil
}

// propose hands a primary's entry to raft and records its leaf. Called
// under orderMu.
func (n *Node) propose(e *ledger.Entry) error {
	if err := n.replica.Propose(e); err != nil {
		if errors.Is(err, consensus.ErrNotPrimary) || errors.Is(err, consensus.ErrStaleSeqno) {
			return fmt.Errorf("%w: %w", ErrNotPrimary, err)
		}
		n.fail(err)
		return err
	}
	n.noteEntry(e)
	return nil
}

// noteEntry adds an entry that is now part of the node's state (executed by
// this primary or applied from the ledger) to the Merkle tree and the view
// history. Called under orderMu, in seqno order.
func (n *Node) noteEntry(e *ledger.Entry) {
	leaf := e.Leaf()
	n.tree.Append(merkle.LeafHash(leaf[:]))
	n.views.note(e.View, e.Seqno)
}

// appendSignature proposes a signature entry over the Merkle root of every
// entry before it, signed with the service key. Called by the loop only.
func (n *Node) appendSignature() error {
	n.orderMu.Lock()
	defer n.orderMu.Unlock()
	view := n.primaryView
	if view == 0 {
		return nil
	}
	_, err := n.store.Sequence(func(seqno ids.Seqno) error {
		treeSize := uint64(seqno) - 1
		root := n.tree.Root()
		signed, err := receipt.SignRoot(n.rand, n.serviceKey, root)
		if err != nil {
			return fmt.Errorf("node: sign root: %w", err)
		}
		rec := ledger.SignatureRecord{View: view, Seqno: seqno, TreeSize: treeSize, Root: root,
			SignedRoot: signed, NodeID: string(n.nodeID), NodeCert: n.nodeCert.Raw}
		pub, err := rec.Marshal()
		if err != nil {
			return err
		}
		e := ledger.Entry{Kind: ledger.KindSignature, View: view, Seqno: seqno, Public: pub,
			CommitEvidenceDigest: n.secrets.At(seqno).CommitEvidenceDigest(ids.TxID{View: view, Seqno: seqno})}
		if err := n.propose(&e); err != nil {
			return err
		}
		n.sigs.add(seqno, treeSize, signed)
		return nil
	})
	if errors.Is(err, ErrNotPrimary) {
		// Leadership ended between the check and the proposal; the new
		// primary signs.
		return nil
	}
	return err
}

// applyThrough brings the store, tree, view history and signature index up
// to seqno from the durable ledger: the entries a backup applies as raft
// commits them, and those a new primary adopts from its log. Called under
// orderMu.
func (n *Node) applyThrough(seqno ids.Seqno) error {
	from := n.store.Seqno() + 1
	for ; from <= seqno; from++ {
		e := n.storage.Recent(uint64(from))
		if e == nil {
			break
		}
		if err := n.applyEntry(e); err != nil {
			return err
		}
	}
	if seqno < from {
		return nil
	}
	return n.ledger.ReadRange(from, seqno, func(e *ledger.Entry, _ []byte) error { return n.applyEntry(e) })
}

// applyEntry applies one durable entry (see applyThrough).
func (n *Node) applyEntry(e *ledger.Entry) error {
	ws, err := n.decodeWriteSet(e)
	if err != nil {
		return err
	}
	if e.Kind == ledger.KindSignature {
		rec, err := ledger.UnmarshalSignatureRecord(e.Public)
		if err != nil {
			return fmt.Errorf("node: signature at seqno %d: %w", e.Seqno, err)
		}
		n.sigs.add(e.Seqno, rec.TreeSize, rec.SignedRoot)
	}
	if err := n.store.Apply(e.Seqno, ws); err != nil {
		return fmt.Errorf("node: apply seqno %d: %w", e.Seqno, err)
	}
	n.noteEntry(e)
	if ws != nil && ws.Touches(app.NodesTable) {
		n.peersStale = true
	}
	return n.noteRekey(e.Seqno, ws)
}

// rollbackTo drops the state this node executed beyond seqno (an ex-primary
// whose uncommitted suffix raft may replace). Called under orderMu.
func (n *Node) rollbackTo(seqno ids.Seqno) error {
	if n.store.Seqno() <= seqno {
		return nil
	}
	if err := n.store.Rollback(seqno); err != nil {
		return fmt.Errorf("node: roll back to %d: %w", seqno, err)
	}
	if err := n.tree.Truncate(uint64(seqno)); err != nil {
		return fmt.Errorf("node: roll back to %d: %w", seqno, err)
	}
	n.views.truncate(seqno)
	n.sigs.truncate(seqno)
	n.secrets.Rollback(seqno)
	n.peersStale = true
	return nil
}

func (n *Node) signalLoop() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// loop is the node's consensus goroutine: it ticks raft, proposes
// signatures when due and runs raft's Ready loop (persist, send, apply).
// Group commit falls out of it: proposals made while a Ready is persisted
// form the next Ready.
func (n *Node) loop() {
	defer close(n.loopDone)
	ticker := time.NewTicker(time.Duration(n.cfg.Consensus.TickMS) * time.Millisecond)
	defer ticker.Stop()
	sigTimer := time.NewTimer(time.Hour)
	sigTimer.Stop()
	for {
		select {
		case <-n.stop:
			if n.failed() == nil {
				n.finalFlush()
			}
			return
		case <-n.wake:
		case <-ticker.C:
			n.replica.Tick()
			n.tickDuties()
		case <-sigTimer.C:
		}
		if n.failed() != nil {
			continue
		}
		if err := n.drive(false); err != nil {
			n.fail(err)
			continue
		}
		if wait, pending := n.signatureWait(); pending {
			sigTimer.Reset(wait)
		}
	}
}

// drive signs if due (or forced) and processes every pending Ready.
func (n *Node) drive(forceSign bool) error {
	if n.signatureDue(forceSign) {
		if err := n.appendSignature(); err != nil {
			return err
		}
	}
	for n.replica.HasReady() {
		start := n.clock.Now()
		before := n.durable.Load()
		if err := n.replica.ProcessReady(); err != nil {
			return err
		}
		durable := uint64(n.ledger.DurableSeqno())
		if durable > before {
			n.metrics.observeSync(n.clock.Now().Sub(start), durable-before)
		}
		n.durable.Store(durable)
		n.fastCommit()
	}
	return n.checkConfLeaves()
}

// finalFlush signs and persists what this node executed before it stops.
func (n *Node) finalFlush() {
	if err := n.drive(true); err != nil {
		n.log.Error("final flush failed", "err", err)
	}
}

// signatureWait says how long until the next signature is due while
// unsigned entries exist.
func (n *Node) signatureWait() (time.Duration, bool) {
	first, ok := n.sigs.firstUnsignedSince()
	if !ok || !n.isPrimary() || n.store.Seqno() == n.sigs.lastSeqno() {
		return 0, false
	}
	return max(0, first.Add(time.Duration(n.cfg.Ledger.SignatureIntervalMS)*time.Millisecond).Sub(n.clock.Now())), true
}

func (n *Node) signatureDue(force bool) bool {
	if !n.isPrimary() {
		return false
	}
	unsigned := uint64(n.store.Seqno() - n.sigs.lastSeqno())
	if unsigned == 0 {
		return false
	}
	if force || n.forceSign.Swap(false) || n.cfg.Ledger.SignatureIntervalMS == 0 || unsigned >= uint64(n.cfg.Ledger.SignatureIntervalTxs) {
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

// onCommit is the replica's OnCommit: raft committed every entry up to
// commit, durable here. Backups apply them; everyone advances the
// signature commit point.
func (n *Node) onCommit(commit uint64) {
	c := ids.Seqno(commit)
	n.orderMu.Lock()
	err := n.applyThrough(c)
	n.applied.Store(commit)
	sig := n.sigs.lastAtOrBefore(c)
	if err == nil {
		// Raft-committed states are never rolled back.
		n.store.Compact(c)
	}
	if refresh := n.unlockOrder(); err != nil {
		n.fail(err)
		return
	} else if refresh {
		n.refreshPeers()
	}
	n.raiseCommitted(sig)
	if sig > n.chunksCommitted {
		if err := n.ledger.SetCommitted(sig); err != nil {
			n.fail(err)
			return
		}
		n.chunksCommitted = sig
	}
	n.broadcastCommit()
}

// raiseCommitted advances the commit point to the signature at sig, if
// that is later, and wakes the waiters.
func (n *Node) raiseCommitted(sig ids.Seqno) {
	for {
		cur := n.committed.Load()
		if uint64(sig) <= cur {
			return
		}
		if n.committed.CompareAndSwap(cur, uint64(sig)) {
			n.broadcastCommit()
			return
		}
	}
}

// fastCommit lets the primary answer its waiting clients as soon as raft's
// commit index passes a signature, from the goroutine that stepped the
// followers' acknowledgements, instead of when the loop, busy with the
// next batch's fsync, hands the commit out. It holds only while this
// node is raft's leader in the term it became primary in: then every
// entry of its log up to raft's commit index is committed, and its
// signature index lists exactly its log's signatures. The entries must
// also be durable here, for receipts and reads of the ledger.
func (n *Node) fastCommit() {
	term := n.primaryTerm.Load()
	if term == 0 {
		return
	}
	st := n.replica.Status()
	if st.Role != raft.StateLeader || st.Term != term {
		return
	}
	c := min(st.Commit, uint64(n.ledger.DurableSeqno()))
	n.raiseCommitted(n.sigs.lastAtOrBefore(ids.Seqno(c)))
}

// onRoleChange is the replica's OnRoleChange. A new primary adopts every
// entry of its log (raft will commit them in its term) and signs at once,
// so the previous view's entries commit promptly. An ex-primary forgets
// what it executed beyond the commit point: raft may replace it.
func (n *Node) onRoleChange(leader bool, term uint64) {
	n.orderMu.Lock()
	var err error
	if leader {
		durable := n.ledger.DurableSeqno()
		if err = n.applyThrough(durable); err == nil {
			n.primaryView = ids.View(term)
			n.confPending = durable
			n.forceSign.Store(true)
		}
	} else {
		n.primaryView = 0
		n.confLeaves = nil
		err = n.rollbackTo(ids.Seqno(n.applied.Load()))
	}
	n.primaryTerm.Store(uint64(n.primaryView))
	if refresh := n.unlockOrder(); err != nil {
		n.fail(err)
		return
	} else if refresh {
		n.refreshPeers()
	}
	n.log.Info("role changed", "primary", leader, "view", term)
	n.broadcastCommit()
	n.signalLoop()
}

// unlockOrder releases orderMu and says whether the entries applied under
// it changed the nodes table (the transport's peers need refreshing).
func (n *Node) unlockOrder() (refreshPeers bool) {
	refreshPeers, n.peersStale = n.peersStale, false
	n.orderMu.Unlock()
	return refreshPeers
}

func (n *Node) isPrimary() bool { return n.primaryTerm.Load() != 0 }

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

// txStatus answers from this node's log and raft's commit index as
// applied here (docs/replication.md §3). Raft never changes a committed
// entry, and every log that can win an election holds the committed ones:
// so a committed entry of a later view at or before id's seqno proves that
// id can never commit (every entry after it has a later view too), and a
// committed entry of another view at id's seqno is a different
// transaction. Anything not yet decided is Pending if this node holds it
// and Unknown otherwise.
func (n *Node) txStatus(id ids.TxID) ids.TxStatus {
	if id.Seqno == 0 {
		return ids.StatusUnknown
	}
	// A signature-committed seqno is raft-committed too (the primary
	// learns it before the loop hands it out: fastCommit).
	applied := ids.Seqno(max(n.applied.Load(), n.committed.Load()))
	if probe := min(id.Seqno, applied); probe > 0 && n.views.viewAt(probe) > id.View {
		return ids.StatusInvalid
	}
	if id.Seqno <= applied {
		switch {
		case n.views.viewAt(id.Seqno) != id.View:
			return ids.StatusInvalid
		case uint64(id.Seqno) <= n.committed.Load():
			return ids.StatusCommitted
		default:
			return ids.StatusPending
		}
	}
	if view, ok := n.viewInLog(id.Seqno); ok && view == id.View {
		return ids.StatusPending
	}
	return ids.StatusUnknown
}

// viewInLog returns the view of the entry at seqno in this node's log, if
// it holds one: in its state (a primary's executed entries) or in its
// durable ledger (a backup's replicated, not yet committed ones).
func (n *Node) viewInLog(s ids.Seqno) (ids.View, bool) {
	if s <= n.store.Seqno() {
		return n.views.viewAt(s), true
	}
	t, err := n.storage.Term(uint64(s))
	if err != nil {
		return 0, false
	}
	return ids.View(t), true
}

// lastCommitted returns the TxID of the last committed entry.
func (n *Node) lastCommitted() ids.TxID {
	s := ids.Seqno(n.committed.Load())
	if s == 0 {
		return ids.TxID{}
	}
	return ids.TxID{View: n.views.viewAt(s), Seqno: s}
}

// viewHistory records the first seqno of every view in the node's state,
// so the view of any seqno is a binary search away.
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

// truncate forgets the seqnos after s.
func (h *viewHistory) truncate(s ids.Seqno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts = h.starts[:sort.Search(len(h.starts), func(i int) bool { return h.starts[i].first > s })]
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

// sigIndex lists the signature entries of the node's state in seqno order,
// with the signed root each receipt under it reuses.
type sigIndex struct {
	mu   sync.RWMutex
	sigs []signature
	// unsignedSince is when the loop first saw unsigned entries since the
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

// truncate forgets the signatures after s.
func (x *sigIndex) truncate(s ids.Seqno) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sigs = x.sigs[:sort.Search(len(x.sigs), func(i int) bool { return x.sigs[i].seqno > s })]
	x.unsignedSince = time.Time{}
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

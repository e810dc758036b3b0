package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/consensus"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/internal/vfs"
)

func (n *Node) platformOptions() []attest.Option {
	if n.cfg.Attest.VirtualCodeID != "" {
		return []attest.Option{attest.WithVirtualCodeID(n.cfg.Attest.VirtualCodeID)}
	}
	return nil
}

// measurementInfo is an entry of the join allow-list.
type measurementInfo struct {
	Platform    string `json:"platform"`
	Measurement string `json:"measurement"`
}

func (m measurementInfo) key() string { return m.Platform + ":" + m.Measurement }

// selfMeasurement is this node's own platform and measurement: the genesis
// node allows nodes running the same code.
//
// It also returns the genesis node's own evidence, bound to its node key,
// for the nodes table (base64 CBOR), and when it was verified: every node's
// evidence is in the ledger for an auditor.
func (n *Node) selfMeasurement() (measurementInfo, string, time.Time, error) {
	// The platform's own evidence, verified as a joiner's would be, says
	// what the measurement is.
	now := n.clock.Now()
	rd, err := attest.ReportDataForKey(n.nodeKey.Public())
	if err != nil {
		return measurementInfo{}, "", now, err
	}
	b, err := n.evidence(rd)
	if err == nil {
		var v *attest.Verified
		if v, err = n.verifier.Verify(b, now); err == nil {
			var raw []byte
			if raw, err = b.Marshal(); err == nil {
				return measurementInfo{Platform: v.Platform, Measurement: v.Measurement.String()}, base64.StdEncoding.EncodeToString(raw), now, nil
			}
		}
	}
	return measurementInfo{}, "", now, fmt.Errorf("node: own measurement: %w", err)
}

// joinPolicy reads the join allow-list from the store. The virtual
// platform proves nothing; a service that lists virtual measurements has
// chosen to accept that (docs/attestation.md).
func (n *Node) joinPolicy() attest.Policy {
	p := attest.Policy{Platforms: map[string]attest.PlatformPolicy{}}
	n.scanTable(gov.JoinPolicyTable, func(key, value []byte) {
		var jp gov.JoinPolicy
		if json.Unmarshal(value, &jp) != nil {
			return // unreadable: the platform stays refused
		}
		p.Platforms[string(key)] = attest.PlatformPolicy{AllowInsecure: jp.AllowInsecure, AllowDebug: jp.AllowDebug,
			MinTCB: jp.MinTCB, HostData: jp.HostData, RTMRs: jp.RTMRs}
	})
	n.scanTable(app.NodeMeasurementsTable, func(_, value []byte) {
		var m measurementInfo
		if json.Unmarshal(value, &m) != nil {
			return
		}
		if pp, ok := p.Platforms[m.Platform]; ok {
			pp.Measurements = append(pp.Measurements, m.Measurement)
			p.Platforms[m.Platform] = pp
		}
	})
	return p
}

// listenNodes binds the node-to-node listener (none with an injected
// transport).
func (n *Node) listenNodes(opts Options) (net.Listener, error) {
	if opts.NewTransport != nil {
		n.nodeAddress = n.cfg.Network.NodeAddress
		return nil, nil
	}
	if opts.NodeListener != nil {
		n.nodeAddress = opts.NodeListener.Addr().String()
		return opts.NodeListener, nil
	}
	ln, err := net.Listen("tcp", n.cfg.Network.NodeAddress)
	if err != nil {
		return nil, fmt.Errorf("node: listen on node_address %s: %w", n.cfg.Network.NodeAddress, err)
	}
	n.nodeAddress = ln.Addr().String()
	return ln, nil
}

// startReplica makes the transport and the raft replica, and sets the
// peers: those a joiner was told, or those of the nodes table.
func (n *Node) startReplica(opts Options, nodeLn net.Listener, joinPeers []transport.Peer) error {
	handler := func(ctx context.Context, msgs []raftpb.Message) {
		select {
		case <-n.replicaReady:
		default:
			return // raft retransmits
		}
		n.replica.Step(ctx, msgs)
		n.fastCommit()
		n.signalLoop()
	}
	var err error
	if opts.NewTransport != nil {
		n.tr, err = opts.NewTransport(n.raftID, handler, n.serveForwarded)
		if err != nil {
			return fmt.Errorf("node: transport: %w", err)
		}
	} else {
		n.tr, err = transport.NewTLS(transport.TLSConfig{
			LocalID:  n.raftID,
			Listener: nodeLn,
			Cert: tls.Certificate{
				Certificate: [][]byte{n.nodeCert.Raw, n.serviceCert.Raw},
				PrivateKey:  n.nodeKey,
				Leaf:        n.nodeCert,
			},
			ServiceCert: n.serviceCert,
			Handler:     handler,
			Forward:     n.serveForwarded,
			Logger:      n.log,
		})
		if err != nil {
			nodeLn.Close()
			return fmt.Errorf("node: transport: %w", err)
		}
	}
	n.replica, err = consensus.NewReplica(consensus.ReplicaConfig{
		ID:             n.raftID,
		Storage:        n.storage,
		Transport:      n.tr,
		Logger:         n.log,
		ElectionTicks:  n.cfg.Consensus.ElectionTicks,
		HeartbeatTicks: 1,
		OnCommit:       n.onCommit,
		OnRoleChange:   n.onRoleChange,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	close(n.replicaReady)
	if len(joinPeers) > 0 {
		n.tr.SetPeers(joinPeers)
	} else {
		if err := n.scanLedgerPeers(); err != nil {
			return err
		}
		n.refreshPeers()
	}
	if m := n.replica.Membership(); len(m.Voters) == 1 && m.Voters[0] == n.raftID {
		// Alone: no one else can win or lose an election, so do not wait
		// for a timeout.
		if err := n.replica.Campaign(); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		return n.driveUntil(n.isPrimary, "this single-node service to elect itself")
	}
	return nil
}

// driveUntil runs the consensus loop inline until cond holds, during Open,
// before the loop goroutine runs: for things that need no other node.
func (n *Node) driveUntil(cond func() bool, what string) error {
	for range 1000 {
		if cond() {
			return nil
		}
		if err := n.drive(false); err != nil {
			return fmt.Errorf("node: waiting for %s: %w", what, err)
		}
		if !n.replica.HasReady() && !cond() && !n.signatureDue(false) {
			break
		}
	}
	if cond() {
		return nil
	}
	return fmt.Errorf("node: %s did not happen", what)
}

// refreshPeers sets the transport's peers: every node that is not retired,
// as the nodes table says, plus those the durable ledger named when the
// node started (its state may lag its ledger until raft commits again).
func (n *Node) refreshPeers() {
	byID := map[ids.NodeID]string{}
	for id, addr := range n.ledgerPeers {
		byID[id] = addr
	}
	n.eachNode(func(id ids.NodeID, ni gov.NodeInfo) {
		if ni.Status == nodeRetired || ni.NodeAddress == "" {
			delete(byID, id)
			return
		}
		byID[id] = ni.NodeAddress
	})
	peers := make([]transport.Peer, 0, len(byID))
	for id, addr := range byID {
		peers = append(peers, transport.Peer{ID: transport.RaftID(id), Address: addr})
	}
	if len(peers) > 0 {
		n.tr.SetPeers(peers)
	}
}

// scanLedgerPeers reads the nodes table writes of every durable ledger
// entry (public, so no decryption), committed or not: the addresses of
// the nodes this one must reach to learn what is committed.
func (n *Node) scanLedgerPeers() error {
	n.ledgerPeers = map[ids.NodeID]string{}
	return n.ledger.Scan(1, func(e *ledger.Entry) error {
		if e.Kind != ledger.KindTx {
			return nil
		}
		ws, err := kv.DecodeWriteSet(e.Public)
		if err != nil {
			return fmt.Errorf("node: seqno %d public write set: %w", e.Seqno, err)
		}
		for _, mw := range ws.Maps {
			if mw.Name != app.NodesTable {
				continue
			}
			for _, w := range mw.Writes {
				var ni gov.NodeInfo
				if w.Deleted || json.Unmarshal(w.Value, &ni) != nil || ni.Status == nodeRetired || ni.NodeAddress == "" {
					delete(n.ledgerPeers, ids.NodeID(w.Key))
					continue
				}
				n.ledgerPeers[ids.NodeID(w.Key)] = ni.NodeAddress
			}
		}
		return nil
	})
}

// tickDuties are the primary's periodic configuration work: promote a
// learner that has caught up to voter.
func (n *Node) tickDuties() {
	if !n.isPrimary() {
		return
	}
	m := n.replica.Membership()
	if caught := m.CaughtUpLearners(n.applied.Load()); len(caught) > 0 {
		cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: caught[0]}}}
		if err := n.proposeConfChange(cc); err != nil && !errors.Is(err, errConfPending) {
			n.log.Warn("could not promote a caught-up learner", "raft_id", raftIDString(caught[0]), "err", err)
		}
		return
	}
	n.retireOne(m)
}

// retireOne removes from the raft configuration one node that governance
// retired (remove_node) and that is still in it. Governance checked that
// the removal leaves a working majority when it was accepted; the check
// is made again here, as the cluster may have changed since.
func (n *Node) retireOne(m consensus.Membership) {
	var rid uint64
	var id ids.NodeID
	n.eachNode(func(nid ids.NodeID, ni gov.NodeInfo) {
		r := transport.RaftID(nid)
		if rid == 0 && ni.Status == nodeRetired && (containsID(m.Voters, r) || containsID(m.Learners, r)) {
			rid, id = r, nid
		}
	})
	if rid == 0 {
		return
	}
	if err := m.CheckRemoval(rid); err != nil {
		if n.retireRefused.Add(1)%200 == 1 { // about every 10 s at the default tick
			n.log.Warn("a retired node stays in the configuration for now", "node_id", id, "err", err)
		}
		return
	}
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode, NodeID: rid}}}
	if err := n.proposeConfChange(cc); err != nil && !errors.Is(err, errConfPending) {
		n.log.Warn("could not remove a retired node from the configuration", "node_id", id, "err", err)
		return
	}
	n.log.Info("removing a retired node from the configuration", "node_id", id)
}

var errConfPending = errors.New("node: a configuration change is pending")

// proposeConfChange proposes cc at the next seqno, one change at a time.
func (n *Node) proposeConfChange(cc raftpb.ConfChangeV2) error {
	n.orderMu.Lock()
	defer n.orderMu.Unlock()
	if n.primaryView == 0 {
		return ErrNotPrimary
	}
	if n.confPending > ids.Seqno(n.applied.Load()) {
		return errConfPending
	}
	data, err := cc.Marshal()
	if err != nil {
		return fmt.Errorf("node: configuration change: %w", err)
	}
	view := n.primaryView
	seqno, err := n.store.Sequence(func(seqno ids.Seqno) error {
		// The ledger entry raft will write: its leaf goes into the tree
		// now, so the next signature covers it. The loop checks it against
		// the durable entry (checkConfLeaves).
		e, err := consensus.ToLedger(raftpb.Entry{Type: raftpb.EntryConfChangeV2, Term: uint64(view), Index: uint64(seqno), Data: data})
		if err != nil {
			return err
		}
		if err := n.replica.ProposeConfChange(uint64(seqno), cc); err != nil {
			if errors.Is(err, consensus.ErrNotPrimary) || errors.Is(err, consensus.ErrStaleSeqno) {
				return fmt.Errorf("%w: %w", ErrNotPrimary, err)
			}
			return err
		}
		n.noteEntry(e)
		return nil
	})
	if err != nil {
		return err
	}
	n.confPending = seqno
	n.confLeaves = append(n.confLeaves, seqno)
	n.signalLoop()
	return nil
}

// checkConfLeaves compares the leaves this primary computed for its
// configuration changes with the entries raft made durable. Raft rewrites
// a configuration change it refuses into an empty entry; the node never
// proposes one raft would refuse (one at a time, none before the
// election's entries are applied), and this check turns a violation into
// a clear failure instead of a signature over the wrong root.
func (n *Node) checkConfLeaves() error {
	n.orderMu.Lock()
	defer n.orderMu.Unlock()
	durable := n.ledger.DurableSeqno()
	keep := n.confLeaves[:0]
	for _, s := range n.confLeaves {
		if s > durable || s > n.store.Seqno() {
			if s <= n.store.Seqno() {
				keep = append(keep, s)
			}
			continue
		}
		e, err := n.ledger.Read(s)
		if err != nil {
			return fmt.Errorf("node: read configuration change %d: %w", s, err)
		}
		got := e.Leaf()
		want, err := n.tree.LeafAt(uint64(s) - 1)
		if err != nil {
			return err
		}
		if merkle.LeafHash(got[:]) != want {
			return fmt.Errorf("node: raft wrote seqno %d differently from the configuration change proposed there", s)
		}
	}
	n.confLeaves = keep
	return nil
}

// loadServiceCertFile reads the pinned service certificate of a node that
// joined (its ledger may not hold the service info yet).
func (n *Node) loadServiceCertFile() (*x509.Certificate, error) {
	raw, err := vfs.ReadFile(n.fs, n.cfg.Service.CertFile)
	if err != nil {
		return nil, fmt.Errorf("node: service certificate: %w", err)
	}
	return crypto.ParseCertPEM(raw)
}

// TDX collateral files in attestation.tdx_collateral_dir.
var tdxCollateralFiles = [5]string{"tcb_info.json", "qe_identity.json", "pck_crl.der", "root_crl.der", "tcb_signing_chain.pem"}

// evidence is the platform's evidence for report data rd, with what other
// nodes need to verify it offline: on tdx, the Intel collateral the
// operator keeps in attestation.tdx_collateral_dir.
func (n *Node) evidence(rd attest.ReportData) (*attest.Bundle, error) {
	b, err := n.platform.Evidence(rd)
	if err != nil || b.Platform != attest.PlatformTDX {
		return b, err
	}
	var files [5][]byte
	for i, name := range tdxCollateralFiles {
		if files[i], err = vfs.ReadFile(n.fs, filepath.Join(n.cfg.Attest.TDXCollateralDir, name)); err != nil {
			return nil, fmt.Errorf("node: tdx collateral: %w", err)
		}
	}
	return attest.NewTDXBundle(b.Evidence, attest.TDXCollateral{TCBInfo: files[0], QEIdentity: files[1], PCKCRL: files[2], RootCACRL: files[3], TCBSigningChain: files[4]})
}

package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/transport"
)

// JoinPath is the endpoint a node calls to join a service.
const JoinPath = "/node/join"

// ErrJoinRefused reports that the service refused this node; every
// *JoinRefusedError matches it.
var ErrJoinRefused = errors.New("node: join refused")

// JoinRefusedError carries the service's reason.
type JoinRefusedError struct {
	Target  string // the node asked
	Status  int
	Code    string
	Message string
}

func (e *JoinRefusedError) Error() string {
	return fmt.Sprintf("node: the service at %s refused to let this node join (%d %s): %s", e.Target, e.Status, e.Code, e.Message)
}

func (e *JoinRefusedError) Unwrap() error { return ErrJoinRefused }

// joinRequest is the body of POST /node/join. The caller's TLS client
// certificate carries the joining node's key, which the evidence binds.
type joinRequest struct {
	Evidence    []byte `json:"evidence"` // attest.Bundle, CBOR (base64 in JSON)
	NodeAddress string `json:"node_address"`
	RPCAddress  string `json:"rpc_address"`
}

// joinResponse hands an admitted node the service's secrets. It travels
// only over the TLS session the joiner opened, pinned to the service
// certificate (and, when a backup forwarded the request, over the
// node-to-node channel).
type joinResponse struct {
	NodeID     ids.NodeID `json:"node_id"`
	ServiceKey string     `json:"service_key"` // PEM
	// LedgerSecrets is the encoded history of ledger secrets
	// (crypto.LedgerSecrets): every one, so the joiner decrypts the whole
	// ledger it catches up with. Base64 in JSON.
	LedgerSecrets []byte     `json:"ledger_secrets"`
	Peers         []joinPeer `json:"peers"`
}

// pendingPoll is how often a Pending node asks to join again.
const pendingPoll = time.Second

// joinPending answers a joining node that the members have not trusted
// yet (202): it asks again until they do.
type joinPending struct {
	NodeID ids.NodeID `json:"node_id"`
	Status string     `json:"status"`
}

type joinPeer struct {
	NodeID      ids.NodeID `json:"node_id"`
	NodeAddress string     `json:"node_address"`
}

// join asks the service at join.target to admit this node, with evidence
// binding a fresh node key, and seals the secrets it is given.
func (n *Node) join() ([]transport.Peer, error) {
	var err error
	if n.serviceCert, err = n.loadServiceCertFile(); err != nil {
		return nil, fmt.Errorf("%w (a joining node needs the service certificate, service.cert_file)", err)
	}
	nodeKey, err := crypto.GenerateKey(n.rand)
	if err != nil {
		return nil, err
	}
	rd, err := attest.ReportDataForKey(nodeKey.Public())
	if err != nil {
		return nil, err
	}
	bundle, err := n.evidence(rd)
	if err != nil {
		return nil, fmt.Errorf("node: attestation evidence: %w", err)
	}
	evidence, err := bundle.Marshal()
	if err != nil {
		return nil, err
	}
	clientCert, err := crypto.SelfSign(n.rand, nodeKey, crypto.CertOptions{CommonName: "Coco joining node", Client: true})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(joinRequest{Evidence: evidence, NodeAddress: n.nodeAddress, RPCAddress: n.cfg.Network.RPCAddress})
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(n.serviceCert)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			TLSClientConfig: &tls.Config{
				MinVersion:   tls.VersionTLS13,
				RootCAs:      roots,
				Certificates: []tls.Certificate{{Certificate: [][]byte{clientCert.Raw}, PrivateKey: nodeKey, Leaf: clientCert}},
			},
		},
	}
	defer client.CloseIdleConnections()
	resp, err := n.postJoin(client, body)
	if err != nil {
		return nil, err
	}
	keyPEM, err := crypto.KeyPEM(nodeKey)
	if err != nil {
		return nil, err
	}
	if err := n.setSecrets([]byte(resp.ServiceKey), keyPEM, resp.LedgerSecrets); err != nil {
		return nil, fmt.Errorf("node: join answer: %w", err)
	}
	if err := n.checkServiceIdentity(); err != nil {
		return nil, err
	}
	if err := n.storeSecrets([]byte(resp.ServiceKey), keyPEM, resp.LedgerSecrets); err != nil {
		return nil, err
	}
	peers := make([]transport.Peer, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		peers = append(peers, transport.Peer{ID: transport.RaftID(p.NodeID), Address: p.NodeAddress})
	}
	n.log.Info("joined the service", "node_id", n.nodeID, "via", n.cfg.Join.Target, "peers", len(peers))
	return peers, nil
}

// postJoin sends the join request until it is answered, retrying while the
// service cannot decide (no primary, unreachable) for up to join.timeout_ms,
// and for as long as the node is Pending: the members decide when to trust
// it, and the operator stops the node to give up.
func (n *Node) postJoin(client *http.Client, body []byte) (*joinResponse, error) {
	url := "https://" + n.cfg.Join.Target + JoinPath
	deadline := time.Now().Add(time.Duration(n.cfg.Join.TimeoutMS) * time.Millisecond)
	backoff := 100 * time.Millisecond
	pendingPolls := 0
	for {
		status, raw, err := doJoin(client, url, body)
		switch {
		case err == nil && status == http.StatusAccepted:
			var p joinPending
			if err := app.DecodeJSON(raw, &p); err != nil {
				return nil, fmt.Errorf("node: join answer from %s: %w", n.cfg.Join.Target, err)
			}
			if pendingPolls%30 == 0 { // every half minute or so
				n.log.Info("waiting for the members to trust this node: they propose transition_node_to_trusted for it",
					"node_id", p.NodeID, "status", p.Status, "via", n.cfg.Join.Target)
			}
			pendingPolls++
			select {
			case <-n.joinCtx.Done():
				return nil, fmt.Errorf("node: stopped while node %s was %s: %w", p.NodeID, p.Status, n.joinCtx.Err())
			case <-time.After(pendingPoll):
			}
			deadline = time.Now().Add(time.Duration(n.cfg.Join.TimeoutMS) * time.Millisecond)
			continue
		case err == nil && status == http.StatusOK:
			var resp joinResponse
			if err := app.DecodeJSON(raw, &resp); err != nil {
				return nil, fmt.Errorf("node: join answer from %s: %w", n.cfg.Join.Target, err)
			}
			return &resp, nil
		case err == nil && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout:
			var eb errorBody
			_ = json.Unmarshal(raw, &eb)
			if eb.Error.Message == "" {
				eb.Error.Message = string(bytes.TrimSpace(raw))
			}
			return nil, &JoinRefusedError{Target: n.cfg.Join.Target, Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		if err == nil {
			err = fmt.Errorf("service unavailable: %s", bytes.TrimSpace(raw))
		}
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return nil, fmt.Errorf("node: %s is not a node of the service whose certificate is %s: %w", n.cfg.Join.Target, n.cfg.Service.CertFile, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node: could not join via %s within %d ms: %w", n.cfg.Join.Target, n.cfg.Join.TimeoutMS, err)
		}
		n.log.Info("join not answered yet; retrying", "target", n.cfg.Join.Target, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func doJoin(client *http.Client, url string, body []byte) (int, []byte, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw, err
}

// serveJoin admits a node on the primary: evidence verified and its
// measurement on the allow-list, the node recorded (with its evidence) in
// the nodes table, added to raft as a learner (the primary promotes it to
// voter once it has caught up), and given the secrets.
func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, app.Errorf(http.StatusUnauthorized, app.CodeMissingCert, "a joining node presents its node key in a TLS client certificate"))
		return
	}
	cert := r.TLS.PeerCertificates[0]
	body, aerr := n.readBody(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if !n.isPrimary() {
		n.forward(w, r, body)
		return
	}
	var req joinRequest
	if err := app.DecodeJSON(body, &req); err != nil {
		writeError(w, app.Errorf(http.StatusBadRequest, app.CodeInvalidInput, "join request: %v", err))
		return
	}
	for name, addr := range map[string]string{"node_address": req.NodeAddress, "rpc_address": req.RPCAddress} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			writeError(w, app.Errorf(http.StatusBadRequest, app.CodeInvalidInput, "join request: %s %q must be host:port", name, addr))
			return
		}
	}
	bundle, err := attest.UnmarshalBundle(req.Evidence)
	if err != nil {
		err = &attest.RefusedError{Reason: attest.ReasonEvidenceInvalid, Detail: "the evidence is not an evidence bundle", Err: err}
	} else {
		_, err = n.joinPolicy().Admit(n.verifier, bundle, cert.PublicKey, n.clock.Now())
	}
	id, kerr := crypto.PublicKeyID(cert.PublicKey)
	if err == nil {
		err = kerr
	}
	if err != nil {
		n.log.Warn("refused a joining node", "remote", r.RemoteAddr, "node_id", id, "err", err)
		writeError(w, app.Errorf(http.StatusForbidden, app.CodeJoinRefused, "%v", err))
		return
	}
	nodeID := ids.NodeID(id)
	status, aerr := n.recordJoiner(r, nodeID, cert, &req, bundle)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	switch status {
	case nodePending:
		writeJSON(w, http.StatusAccepted, joinPending{NodeID: nodeID, Status: nodePending})
		return
	case nodeRetired:
		writeError(w, app.Errorf(http.StatusForbidden, app.CodeJoinRefused, "node %s was retired from the service: a retired node cannot join again (start it with a new node key)", nodeID))
		return
	}
	n.refreshPeers()
	if rid := transport.RaftID(nodeID); !n.inConfiguration(rid) {
		if err := n.addLearner(r.Context(), rid); err != nil {
			writeError(w, nodeError(err))
			return
		}
		n.log.Info("admitted a node", "node_id", nodeID)
	}
	keyPEM, err := crypto.KeyPEM(n.serviceKey)
	if err != nil {
		writeError(w, app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, joinResponse{NodeID: nodeID, ServiceKey: string(keyPEM), LedgerSecrets: n.secrets.Through(ids.Seqno(n.committed.Load())).AppendBinary(nil), Peers: n.peerList()})
}

// addLearner proposes adding id as a learner, waiting its turn behind a
// pending configuration change.
func (n *Node) addLearner(ctx context.Context, id uint64) error {
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: id}}}
	return n.retryConfChange(ctx, cc)
}

// retryConfChange proposes cc, waiting (a tick at a time) while another
// configuration change is pending.
func (n *Node) retryConfChange(ctx context.Context, cc raftpb.ConfChangeV2) error {
	for {
		err := n.proposeConfChange(cc)
		if !errors.Is(err, errConfPending) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(n.cfg.Consensus.TickMS) * time.Millisecond):
		}
	}
}

// peerList lists the nodes that are not retired, for a joiner.
func (n *Node) peerList() []joinPeer {
	var out []joinPeer
	n.eachNode(func(id ids.NodeID, ni gov.NodeInfo) {
		if ni.Status != nodeRetired && ni.NodeAddress != "" {
			out = append(out, joinPeer{NodeID: id, NodeAddress: ni.NodeAddress})
		}
	})
	return out
}

// eachNode calls fn for every entry of the nodes table, in id order.
func (n *Node) eachNode(fn func(ids.NodeID, gov.NodeInfo)) {
	n.scanTable(app.NodesTable, func(key, value []byte) {
		var ni gov.NodeInfo
		if json.Unmarshal(value, &ni) == nil {
			fn(ids.NodeID(key), ni)
		}
	})
}

// scanTable calls fn for every entry of table in the latest state, in key
// order, a page at a time.
func (n *Node) scanTable(table kv.MapName, fn func(key, value []byte)) {
	tx := n.store.Begin()
	var from []byte
	for {
		items, next := tx.Scan(table, from, nil, 100)
		for _, it := range items {
			fn(it.Key, it.Value)
		}
		if next == nil {
			return
		}
		from = next
	}
}

// recordJoiner returns the status of a joining node whose evidence the
// primary has accepted, recording it first if it is new: Trusted if the
// service trusts joiners automatically (service configuration
// auto_trust_nodes), else Pending until the members accept a
// transition_node_to_trusted proposal. The record keeps the evidence, so
// an auditor can verify it again.
func (n *Node) recordJoiner(r *http.Request, nodeID ids.NodeID, cert *x509.Certificate, req *joinRequest, bundle *attest.Bundle) (string, *app.Error) {
	tx := n.store.Begin()
	if raw, ok := tx.Get(app.NodesTable, []byte(nodeID)); ok {
		var ni gov.NodeInfo
		if err := json.Unmarshal(raw, &ni); err != nil {
			return "", app.Errorf(http.StatusInternalServerError, app.CodeInternal, "node %s: %v", nodeID, err)
		}
		return ni.Status, nil
	}
	var cfg gov.ServiceConfig
	if raw, ok := tx.Get(gov.ServiceConfigTable, []byte(gov.ServiceConfigKey)); ok {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return "", app.Errorf(http.StatusInternalServerError, app.CodeInternal, "service configuration: %v", err)
		}
	}
	status := nodePending
	if cfg.AutoTrustNodes {
		status = nodeTrusted
	}
	now := n.clock.Now()
	v, err := n.verifier.Verify(bundle, now)
	if err != nil {
		return "", app.Errorf(http.StatusForbidden, app.CodeJoinRefused, "%v", err)
	}
	info := gov.NodeInfo{Cert: string(crypto.CertPEM(cert)), RPCAddress: req.RPCAddress, NodeAddress: req.NodeAddress, Status: status,
		Platform: v.Platform, Measurement: v.Measurement.String(), Evidence: base64.StdEncoding.EncodeToString(req.Evidence),
		VerifiedAt: now.UTC().Format(time.RFC3339)}
	raw, err := json.Marshal(info)
	if err != nil {
		return "", app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%v", err)
	}
	tx.Put(app.NodesTable, []byte(nodeID), raw)
	txid, err := n.commitTx(tx, [32]byte{})
	if err != nil {
		return "", nodeError(err)
	}
	if aerr := n.awaitCommit(r.Context(), txid); aerr != nil {
		return "", aerr
	}
	n.log.Info("recorded a joining node", "node_id", nodeID, "status", status, "platform", v.Platform, "measurement", v.Measurement, "txid", txid)
	return status, nil
}

// inConfiguration reports whether raft id is a voter or learner.
func (n *Node) inConfiguration(id uint64) bool {
	m := n.replica.Membership()
	return containsID(m.Voters, id) || containsID(m.Learners, id)
}

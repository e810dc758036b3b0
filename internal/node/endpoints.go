package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/receipt"
)

// nodeEndpoint is a built-in endpoint that works outside the app registry
// (it reads node state, not only the store).
type nodeEndpoint struct {
	method  string
	auth    app.AuthPolicy
	summary string
	serve   func(w http.ResponseWriter, r *http.Request)
}

func (n *Node) buildNodeEndpoints() map[string]nodeEndpoint {
	metrics := promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{})
	return map[string]nodeEndpoint{
		"/node/tx":        {http.MethodGet, app.NoAuth, "Commit status of a transaction id", n.serveTxStatus},
		"/node/commit":    {http.MethodGet, app.NoAuth, "Last committed transaction id", n.serveCommit},
		"/node/ready":     {http.MethodGet, app.NoAuth, "200 once the node serves and can write", n.serveReady},
		"/node/network":   {http.MethodGet, app.NoAuth, "Service status, identity and nodes", n.serveNetwork},
		"/node/consensus": {http.MethodGet, app.NoAuth, "Raft state of this node: term, commit, leader, membership", n.serveConsensus},
		"/node/quotes":    {http.MethodGet, app.NoAuth, "Every node's attestation evidence and what verifying it establishes", n.serveQuotes},
		JoinPath:          {http.MethodPost, app.NoAuth, "Join the service (attested node; forwarded to the primary)", n.serveJoin},
		"/node/metrics":   {http.MethodGet, app.NoAuth, "Prometheus metrics", metrics.ServeHTTP},
		"/node/api":       {http.MethodGet, app.NoAuth, "OpenAPI description of every endpoint", n.serveAPI},
		"/app/receipt":    {http.MethodGet, app.UserCert, "COSE receipt of a committed transaction", n.serveReceipt},
	}
}

func queryTxID(r *http.Request) (ids.TxID, *app.Error) {
	vals := r.URL.Query()["transaction_id"]
	if len(vals) != 1 {
		return ids.TxID{}, app.Errorf(http.StatusBadRequest, app.CodeInvalidTxID, `want exactly one query parameter "transaction_id" of the form <view>.<seqno>, e.g. 2.15`)
	}
	id, err := ids.ParseTxID(vals[0])
	if err != nil {
		return ids.TxID{}, app.Errorf(http.StatusBadRequest, app.CodeInvalidTxID, "%v", err)
	}
	return id, nil
}

type txStatusResponse struct {
	TransactionID string       `json:"transaction_id"`
	Status        ids.TxStatus `json:"status"`
}

func (n *Node) serveTxStatus(w http.ResponseWriter, r *http.Request) {
	id, aerr := queryTxID(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, txStatusResponse{TransactionID: id.String(), Status: n.txStatus(id)})
}

func (n *Node) serveCommit(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, txResponse{TransactionID: n.lastCommitted().String()})
}

func (n *Node) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := n.failed(); err != nil {
		writeError(w, nodeError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type networkResponse struct {
	ServiceStatus      string         `json:"service_status"`
	ServiceCertificate string         `json:"service_certificate"`
	CurrentView        ids.View       `json:"current_view"`
	PrimaryID          ids.NodeID     `json:"primary_id"`
	Nodes              []nodeResponse `json:"nodes"`
}

type nodeResponse struct {
	NodeID      ids.NodeID `json:"node_id"`
	RPCAddress  string     `json:"rpc_address"`
	NodeAddress string     `json:"node_address"`
	// Status is the node's governance status (Trusted, Retired).
	Status  string `json:"status"`
	Primary bool   `json:"primary"`
	// Consensus is the node's raft role: voter, learner (catching up) or
	// none (removed).
	Consensus   string `json:"consensus"`
	Platform    string `json:"platform"`
	Measurement string `json:"measurement"`
}

type consensusResponse struct {
	NodeID    ids.NodeID `json:"node_id"`
	RaftID    string     `json:"raft_id"`
	Role      string     `json:"role"`
	Term      uint64     `json:"term"`
	Commit    uint64     `json:"commit"`
	Applied   uint64     `json:"applied"`
	LastIndex uint64     `json:"last_index"`
	Committed uint64     `json:"committed"` // last signature-committed seqno
	Leader    string     `json:"leader"`    // raft id; "" if none known
	Voters    []string   `json:"voters"`
	Learners  []string   `json:"learners"`
	// Progress is, on the primary, each peer's replicated index and whether
	// it was heard from recently.
	Progress map[string]peerProgress `json:"progress,omitempty"`
}

type peerProgress struct {
	Match        uint64 `json:"match"`
	RecentActive bool   `json:"recent_active"`
}

func raftIDString(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%016x", id)
}

func (n *Node) serveConsensus(w http.ResponseWriter, _ *http.Request) {
	st := n.replica.Status()
	m := n.replica.Membership()
	resp := consensusResponse{NodeID: n.nodeID, RaftID: raftIDString(n.raftID), Role: st.Role.String(), Term: st.Term, Commit: st.Commit,
		Applied: n.applied.Load(), LastIndex: uint64(n.ledger.LastSeqno()), Committed: n.committed.Load(), Leader: raftIDString(st.Leader),
		Voters: []string{}, Learners: []string{}}
	for _, v := range m.Voters {
		resp.Voters = append(resp.Voters, raftIDString(v))
	}
	for _, l := range m.Learners {
		resp.Learners = append(resp.Learners, raftIDString(l))
	}
	if len(m.Progress) > 0 {
		resp.Progress = map[string]peerProgress{}
		for id, pr := range m.Progress {
			resp.Progress[raftIDString(id)] = peerProgress{Match: pr.Match, RecentActive: pr.RecentActive}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) serveNetwork(w http.ResponseWriter, _ *http.Request) {
	st := n.replica.Status()
	resp := networkResponse{ServiceCertificate: n.serviceCertPEM(), CurrentView: ids.View(st.Term), Nodes: []nodeResponse{}}
	var info gov.ServiceInfo
	if raw, ok := n.store.Begin().Get(app.ServiceInfoTable, serviceInfoKey); ok && json.Unmarshal(raw, &info) == nil {
		resp.ServiceStatus = info.Status
	}
	m := n.replica.Membership()
	n.eachNode(func(id ids.NodeID, ni gov.NodeInfo) {
		rid := transport.RaftID(id)
		primary := st.Leader != 0 && rid == st.Leader
		if primary {
			resp.PrimaryID = id
		}
		role := "none"
		switch {
		case slices.Contains(m.Voters, rid):
			role = "voter"
		case slices.Contains(m.Learners, rid):
			role = "learner"
		}
		resp.Nodes = append(resp.Nodes, nodeResponse{NodeID: id, RPCAddress: ni.RPCAddress, NodeAddress: ni.NodeAddress, Status: ni.Status,
			Primary: primary, Consensus: role, Platform: ni.Platform, Measurement: ni.Measurement})
	})
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) serveReceipt(w http.ResponseWriter, r *http.Request) {
	id, aerr := queryTxID(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	switch st := n.txStatus(id); st {
	case ids.StatusUnknown:
		writeError(w, app.Errorf(http.StatusNotFound, app.CodeTxUnknown, "transaction %s is not known to this node", id))
		return
	case ids.StatusInvalid:
		writeError(w, app.Errorf(http.StatusNotFound, app.CodeTxInvalid, "transaction %s is Invalid: it was lost and never committed, so it has no receipt", id))
		return
	case ids.StatusPending:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusAccepted, txStatusResponse{TransactionID: id.String(), Status: st})
		return
	}
	rcpt, err := n.buildReceipt(id)
	if err != nil {
		writeError(w, app.Errorf(http.StatusInternalServerError, app.CodeInternal, "building receipt for %s: %v", id, err))
		return
	}
	writeJSON(w, http.StatusOK, rcpt)
}

var errNoSignature = errors.New("node: no signature covers the transaction")

// buildReceipt assembles the receipt of a committed transaction from the
// signature that covers it, a Merkle inclusion proof and its ledger entry.
func (n *Node) buildReceipt(id ids.TxID) (*receipt.Receipt, error) {
	sig, ok := n.sigs.covering(id.Seqno)
	if !ok {
		return nil, errNoSignature
	}
	e, err := n.ledger.Read(id.Seqno)
	if err != nil {
		return nil, err
	}
	index := uint64(id.Seqno) - 1
	path, err := n.tree.InclusionProof(index, sig.treeSize)
	if err != nil {
		return nil, err
	}
	cose, err := receipt.Attach(sig.signedRoot, sig.treeSize, index, path)
	if err != nil {
		return nil, err
	}
	leaf := receipt.LeafComponents{WriteSetDigest: e.WriteSetDigest(), CommitEvidence: n.secrets.At(id.Seqno).CommitEvidence(id), ClaimsDigest: e.ClaimsDigest}
	return receipt.New(id.String(), leaf, cose), nil
}

// serveAPI describes every endpoint as a minimal OpenAPI 3.1 document.
func (n *Node) serveAPI(w http.ResponseWriter, _ *http.Request) {
	type param struct {
		Name     string            `json:"name"`
		In       string            `json:"in"`
		Required bool              `json:"required"`
		Schema   map[string]string `json:"schema"`
	}
	type op struct {
		Summary    string                `json:"summary"`
		Parameters []param               `json:"parameters,omitempty"`
		Security   []map[string][]string `json:"security,omitempty"`
	}
	paths := map[string]map[string]op{}
	add := func(method, path, summary string, auth app.AuthPolicy) {
		if paths[path] == nil {
			paths[path] = map[string]op{}
		}
		o := op{Summary: summary}
		for _, seg := range strings.Split(path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				o.Parameters = append(o.Parameters, param{Name: strings.TrimSuffix(name, "}"), In: "path", Required: true, Schema: map[string]string{"type": "string"}})
			}
		}
		switch auth {
		case app.UserCert:
			o.Security = []map[string][]string{{"user_cert": {}}}
		case app.MemberCert:
			o.Security = []map[string][]string{{"member_cert": {}}}
		}
		paths[path][strings.ToLower(method)] = o
	}
	for path, ep := range n.builtins {
		add(ep.method, path, ep.summary, ep.auth)
	}
	for _, ep := range n.apps.Endpoints() {
		add(ep.Method, ep.Path, ep.Summary, ep.Auth)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]string{"title": "Coco node API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"user_cert":   map[string]string{"type": "mutualTLS", "description": "TLS client certificate of a user"},
			"member_cert": map[string]string{"type": "mutualTLS", "description": "TLS client certificate of a member"},
		}},
	})
}

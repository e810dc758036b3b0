package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/gov/constitution"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/transport"
)

// CoseContentType is the media type of a signed governance request.
const CoseContentType = "application/cose"

// govLimits bound every constitution and ballot call a request makes.
var govLimits = constitution.Limits{}

// govEngine returns the governance engine. It is made on first use, when
// the service certificate, whose digest requests must name, is known.
func (n *Node) govEngine() *gov.Engine {
	n.govOnce.Do(func() {
		n.gov = &gov.Engine{ServiceDigest: sha256.Sum256(n.serviceCert.Raw), Limits: govLimits, Node: govHost{n}}
	})
	return n.gov
}

// govHost is what governance asks of the node.
type govHost struct{ n *Node }

// StateDigest is the root of the Merkle tree over every entry executed so
// far: what a member acknowledges.
func (h govHost) StateDigest() string {
	h.n.orderMu.Lock()
	root := h.n.tree.Root()
	h.n.orderMu.Unlock()
	return hex.EncodeToString(root[:])
}

// CheckNodeRemoval refuses to retire a node whose removal from the raft
// configuration would leave no working majority. A node that is not in
// the configuration (never admitted) can always be retired.
func (h govHost) CheckNodeRemoval(id string) error {
	rid := transport.RaftID(ids.NodeID(id))
	m := h.n.replica.Membership()
	if _, ok := m.Progress[rid]; !ok && !containsID(m.Voters, rid) && !containsID(m.Learners, rid) {
		return nil
	}
	return m.CheckRemoval(rid)
}

func (h govHost) Rekey(tx *kv.Tx) error { return h.n.writeRekey(tx) }

func containsID(list []uint64, id uint64) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// govEndpoints are the governance endpoints. Writes are signed COSE
// requests (so they need no TLS client certificate), except asking for
// the state digest to acknowledge, which a member does with its TLS
// identity. Reads are public, like the tables they show.
func (n *Node) govEndpoints() []app.Endpoint {
	return []app.Endpoint{
		{Method: http.MethodPost, Path: "/gov/proposals", Auth: app.NoAuth, Mode: app.ReadWrite,
			Summary: "Submit a proposal signed by an active member (application/cose)",
			Handler: n.govProposalWrite(func(e *gov.Engine, ctx context.Context, tx *kv.Tx, now time.Time, _ string, raw []byte) (*gov.Result, error) {
				return e.Propose(ctx, tx, now, raw)
			}, false)},
		{Method: http.MethodGet, Path: "/gov/proposals", Auth: app.NoAuth, Mode: app.ReadOnly,
			Summary: "List the proposals and their states", Handler: n.govListProposals},
		{Method: http.MethodGet, Path: "/gov/proposals/{proposal_id}", Auth: app.NoAuth, Mode: app.ReadOnly,
			Summary: "A proposal: its actions, ballots and state", Handler: n.govGetProposal},
		{Method: http.MethodPost, Path: "/gov/proposals/{proposal_id}/ballots", Auth: app.NoAuth, Mode: app.ReadWrite,
			Summary: "Vote on a proposal: a signed ballot (application/cose)", Handler: n.govProposalWrite((*gov.Engine).Vote, true)},
		{Method: http.MethodPost, Path: "/gov/proposals/{proposal_id}/withdraw", Auth: app.NoAuth, Mode: app.ReadWrite,
			Summary: "Withdraw a proposal: signed by its proposer (application/cose)", Handler: n.govProposalWrite((*gov.Engine).Withdraw, true)},
		{Method: http.MethodPost, Path: "/gov/members/state-digest", Auth: app.MemberCert, Mode: app.ReadWrite,
			Summary: "Get the state digest to acknowledge (TLS member certificate)", Handler: n.govStateDigest},
		{Method: http.MethodPost, Path: "/gov/members/ack", Auth: app.NoAuth, Mode: app.ReadWrite,
			Summary: "Acknowledge membership: a signed acknowledgement of the state digest (application/cose)", Handler: n.govAck},
		{Method: http.MethodGet, Path: "/gov/members", Auth: app.NoAuth, Mode: app.ReadOnly,
			Summary: "The members and their status", Handler: n.govMembers},
		{Method: http.MethodGet, Path: "/gov/service", Auth: app.NoAuth, Mode: app.ReadOnly,
			Summary: "The service's status, configuration and constitution", Handler: n.govService},
	}
}

// signedBody checks the request carries a COSE body.
func signedBody(c *app.Context) ([]byte, *app.Error) {
	ct := c.Req.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != CoseContentType {
		return nil, app.Errorf(http.StatusUnsupportedMediaType, app.CodeUnsupportedMedia,
			"a governance request is a COSE_Sign1 signed by a member, sent as Content-Type %s, not %q (coco gov sign makes one)", CoseContentType, ct)
	}
	return c.Req.Body, nil
}

// proposalParam returns the {proposal_id} path parameter, checked.
func proposalParam(c *app.Context) (string, *app.Error) {
	id := c.Req.Params["proposal_id"]
	if len(id) != 64 || !isLowerHex(id) {
		return "", app.Errorf(http.StatusBadRequest, app.CodeInvalidInput, "proposal id %q is not 64 lowercase hex digits", clipString(id, 80))
	}
	return id, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// proposalView is a proposal as the endpoints show it.
type proposalView struct {
	ProposalID string `json:"proposal_id"`
	gov.ProposalInfo
	Proposal json.RawMessage `json:"proposal,omitempty"`
}

// engineCall is one of the engine's writes on a proposal (id is "" for a
// new proposal).
type engineCall func(e *gov.Engine, ctx context.Context, tx *kv.Tx, now time.Time, id string, raw []byte) (*gov.Result, error)

// govProposalWrite serves a signed write on a proposal: the proposal id
// from the path when it names one, the COSE body, the engine's call, and
// the proposal as it now stands.
func (n *Node) govProposalWrite(call engineCall, named bool) app.Handler {
	return func(c *app.Context) error {
		var id string
		if named {
			var aerr *app.Error
			if id, aerr = proposalParam(c); aerr != nil {
				return aerr
			}
		}
		raw, aerr := signedBody(c)
		if aerr != nil {
			return aerr
		}
		res, err := call(n.govEngine(), c.Req.Ctx, c.Tx, n.clock.Now(), id, raw)
		if err != nil {
			return govError(err)
		}
		c.JSON(http.StatusOK, proposalView{ProposalID: res.ID, ProposalInfo: res.Info})
		return nil
	}
}

func (n *Node) govGetProposal(c *app.Context) error {
	id, aerr := proposalParam(c)
	if aerr != nil {
		return aerr
	}
	info, err := gov.GetProposal(c.Tx, id)
	if err != nil {
		return govError(err)
	}
	raw, _ := c.Tx.Get(gov.ProposalsTable, []byte(id))
	c.JSON(http.StatusOK, proposalView{ProposalID: id, ProposalInfo: *info, Proposal: raw})
	return nil
}

func (n *Node) govListProposals(c *app.Context) error {
	out, err := listTable(c, gov.ProposalsInfoTable, func(id string, info gov.ProposalInfo) proposalView {
		return proposalView{ProposalID: id, ProposalInfo: info}
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, map[string]any{"proposals": out})
	return nil
}

// listTable decodes every value of a governance table, in key order, into
// its view.
func listTable[T, V any](c *app.Context, table kv.MapName, view func(key string, v T) V) ([]V, error) {
	out := []V{}
	items, _ := c.Tx.Scan(table, nil, nil, 0)
	for _, it := range items {
		var v T
		if err := json.Unmarshal(it.Value, &v); err != nil {
			return nil, app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%s %q: %v", table, it.Key, err)
		}
		out = append(out, view(string(it.Key), v))
	}
	return out, nil
}

func (n *Node) govStateDigest(c *app.Context) error {
	digest, err := n.govEngine().RequestAck(c.Tx, ids.MemberID(c.Req.Caller.ID))
	if err != nil {
		return govError(err)
	}
	c.JSON(http.StatusOK, map[string]string{"member_id": c.Req.Caller.ID, "state_digest": digest})
	return nil
}

func (n *Node) govAck(c *app.Context) error {
	raw, aerr := signedBody(c)
	if aerr != nil {
		return aerr
	}
	id, err := n.govEngine().Ack(c.Req.Ctx, c.Tx, n.clock.Now(), raw)
	if err != nil {
		return govError(err)
	}
	c.JSON(http.StatusOK, map[string]string{"member_id": string(id), "status": gov.MemberActive})
	return nil
}

// memberView is a member as GET /gov/members shows it.
type memberView struct {
	MemberID string `json:"member_id"`
	gov.Member
}

func (n *Node) govMembers(c *app.Context) error {
	out, err := listTable(c, gov.MembersTable, func(id string, m gov.Member) memberView { return memberView{MemberID: id, Member: m} })
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, map[string]any{"members": out})
	return nil
}

func (n *Node) govService(c *app.Context) error {
	var info gov.ServiceInfo
	var cfg gov.ServiceConfig
	var src string
	for _, r := range []struct {
		table kv.MapName
		key   string
		v     any
	}{{gov.ServiceInfoTable, gov.ServiceInfoKey, &info}, {gov.ServiceConfigTable, gov.ServiceConfigKey, &cfg}, {gov.ConstitutionTable, gov.ConstitutionKey, &src}} {
		if raw, ok := c.Tx.Get(r.table, []byte(r.key)); ok {
			if err := json.Unmarshal(raw, r.v); err != nil {
				return app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%s: %v", r.table, err)
			}
		}
	}
	sum := sha256.Sum256([]byte(src))
	c.JSON(http.StatusOK, map[string]any{
		"status": info.Status, "service_certificate": info.Cert, "configuration": cfg,
		"constitution": src, "constitution_digest": hex.EncodeToString(sum[:]),
	})
	return nil
}

// govError maps a governance refusal to the answer: a status and a stable
// code, and the refusal's own message, which says what to fix.
func govError(err error) *app.Error {
	var aerr *app.Error
	if errors.As(err, &aerr) {
		return aerr
	}
	status, code := http.StatusInternalServerError, app.CodeInternal
	switch {
	case errors.Is(err, signedreq.ErrUnknownMember):
		status, code = http.StatusUnauthorized, app.CodeUnknownCaller
	case errors.Is(err, signedreq.ErrBadSignature):
		status, code = http.StatusUnauthorized, app.CodeBadSignature
	case errors.Is(err, signedreq.ErrWrongService):
		status, code = http.StatusBadRequest, app.CodeWrongService
	case errors.Is(err, signedreq.ErrStale):
		status, code = http.StatusBadRequest, app.CodeStaleRequest
	case errors.Is(err, signedreq.ErrReplayed):
		status, code = http.StatusConflict, app.CodeReplayedRequest
	case errors.Is(err, signedreq.ErrMalformed), errors.Is(err, signedreq.ErrWrongKind),
		errors.Is(err, signedreq.ErrWrongProposal), errors.Is(err, gov.ErrBadPayload):
		status, code = http.StatusBadRequest, app.CodeInvalidInput
	case errors.Is(err, gov.ErrInvalidProposal):
		status, code = http.StatusBadRequest, app.CodeInvalidProposal
	case errors.Is(err, gov.ErrNotActive), errors.Is(err, gov.ErrNotProposer):
		status, code = http.StatusForbidden, app.CodeForbidden
	case errors.Is(err, gov.ErrNoProposal):
		status, code = http.StatusNotFound, app.CodeNotFound
	case errors.Is(err, gov.ErrNotOpen):
		status, code = http.StatusConflict, app.CodeProposalNotOpen
	case errors.Is(err, gov.ErrAckMismatch):
		status, code = http.StatusConflict, app.CodeAckMismatch
	case errors.Is(err, gov.ErrConstitution):
		status, code = http.StatusInternalServerError, app.CodeConstitutionFailed
	}
	return &app.Error{Status: status, Code: code, Message: err.Error()}
}

// serviceStatus caches the service status by the version of its record,
// so the check on every application request costs a lookup, not a
// decode.
type serviceStatus struct {
	version ids.Seqno
	status  string
}

// serviceOpen reports whether the members have opened the service.
func (n *Node) serviceOpen() bool {
	raw, version, ok := n.store.Get(app.ServiceInfoTable, serviceInfoKey)
	if !ok {
		return false
	}
	if st := n.svcStatus.Load(); st != nil && st.version == version {
		return st.status == gov.ServiceOpen
	}
	var info gov.ServiceInfo
	if json.Unmarshal(raw, &info) != nil {
		return false
	}
	n.svcStatus.Store(&serviceStatus{version: version, status: info.Status})
	return info.Status == gov.ServiceOpen
}

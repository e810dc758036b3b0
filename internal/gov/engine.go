package gov

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov/constitution"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// DefaultWindow is how far a request's created_at may be from the node's
// clock when Engine.Window is zero.
const DefaultWindow = 5 * time.Minute

// dropTriggers are the actions whose acceptance drops every other open
// proposal: they change the rules (the constitution) or who votes (the
// members), and a proposal half-voted under the old ones would otherwise
// resolve under the new ones.
var dropTriggers = []string{"set_constitution", "set_member", "remove_member"}

// NodeHost is what governance needs from the node.
type NodeHost interface {
	// StateDigest returns the digest of the service's current state that
	// a member acknowledges: the root of its Merkle tree, hex.
	StateDigest() string
	// CheckNodeRemoval says why the node cannot be retired now (nil if
	// it can): a removal must leave a working majority.
	CheckNodeRemoval(nodeID string) error
	// Rekey writes a new ledger secret in tx (see node.LedgerRekeyTable).
	Rekey(tx *kv.Tx) error
}

// Engine runs governance requests against a transaction: it admits signed
// requests (signature, freshness, replay, the member's standing), records
// them, and drives proposals through the constitution. See doc.go.
type Engine struct {
	// ServiceDigest is the SHA-256 of the service certificate's DER:
	// requests must name it.
	ServiceDigest [32]byte
	// Window bounds how far created_at may be from now, either way
	// (DefaultWindow if zero).
	Window time.Duration
	// Limits bound every constitution and ballot call.
	Limits constitution.Limits
	// Node performs the actions that need the node.
	Node NodeHost

	mu    sync.Mutex
	cache map[[32]byte]*constitution.Constitution // by source digest
}

func (e *Engine) window() time.Duration {
	if e.Window <= 0 {
		return DefaultWindow
	}
	return e.Window
}

// Result is a proposal after a request: its id, its record and the
// proposal itself.
type Result struct {
	ID   string
	Info ProposalInfo
}

// Propose admits a signed proposal (kind proposal, payload
// {"actions":[...]}) from an active member, records it Open, and resolves
// it at once (a constitution may accept a proposal without votes). The
// proposal id is the hex replay key of the signed request.
func (e *Engine) Propose(ctx context.Context, tx *kv.Tx, now time.Time, raw []byte) (*Result, error) {
	r, _, err := e.admit(tx, now, raw, signedreq.KindProposal, "", true)
	if err != nil {
		return nil, err
	}
	c, err := e.constitution(tx)
	if err != nil {
		return nil, err
	}
	v, err := c.Validate(ctx, string(r.Payload))
	if err != nil {
		return nil, fmt.Errorf("%w: validate: %w", ErrConstitution, err)
	}
	if !v.Valid {
		return nil, fmt.Errorf("%w: %s", ErrInvalidProposal, v.Description)
	}
	key := r.ReplayKey()
	id := hex.EncodeToString(key[:])
	info := ProposalInfo{ProposerID: string(r.MemberID), State: StateOpen, CreatedAt: r.CreatedAt.Unix(), Ballots: map[string]Ballot{}}
	tx.Put(ProposalsTable, []byte(id), r.Payload)
	e.decide(ctx, tx, id, &info, string(r.Payload), c)
	return &Result{ID: id, Info: info}, e.putInfo(tx, id, &info)
}

// Vote admits a signed ballot (kind ballot, payload {"vote": bool} or
// {"ballot": "<JS module>"}) on proposal id from an active member, records
// it (replacing that member's previous ballot) and resolves the proposal.
func (e *Engine) Vote(ctx context.Context, tx *kv.Tx, now time.Time, id string, raw []byte) (*Result, error) {
	r, _, err := e.admit(tx, now, raw, signedreq.KindBallot, id, true)
	if err != nil {
		return nil, err
	}
	info, proposal, err := e.openProposal(tx, id)
	if err != nil {
		return nil, err
	}
	b, err := parseBallot(r.Payload, e.Limits)
	if err != nil {
		return nil, err
	}
	info.Ballots[string(r.MemberID)] = b
	c, err := e.constitution(tx)
	if err != nil {
		return nil, err
	}
	e.decide(ctx, tx, id, info, proposal, c)
	return &Result{ID: id, Info: *info}, e.putInfo(tx, id, info)
}

// Withdraw admits a signed withdrawal of proposal id; only its proposer
// may withdraw it, and only while it is Open.
func (e *Engine) Withdraw(ctx context.Context, tx *kv.Tx, now time.Time, id string, raw []byte) (*Result, error) {
	r, _, err := e.admit(tx, now, raw, signedreq.KindWithdrawal, id, true)
	if err != nil {
		return nil, err
	}
	info, _, err := e.openProposal(tx, id)
	if err != nil {
		return nil, err
	}
	if info.ProposerID != string(r.MemberID) {
		return nil, fmt.Errorf("%w: proposal %s was proposed by %s, not %s", ErrNotProposer, id, info.ProposerID, r.MemberID)
	}
	info.State = StateWithdrawn
	return &Result{ID: id, Info: *info}, e.putInfo(tx, id, info)
}

// RequestAck records, for member id, the state digest it is to
// acknowledge, and returns it. The caller has authenticated the member
// (its TLS client certificate).
func (e *Engine) RequestAck(tx *kv.Tx, id ids.MemberID) (string, error) {
	if _, err := member(tx, id); err != nil {
		return "", err
	}
	ack := MemberAck{StateDigest: e.Node.StateDigest()}
	return ack.StateDigest, putJSON(tx, MemberAcksTable, string(id), &ack)
}

// ackPayload is the payload of an acknowledgement.
type ackPayload struct {
	StateDigest string `json:"state_digest"`
}

// Ack admits a member's signed acknowledgement (kind ack, payload
// {"state_digest": "<hex>"}) of the digest RequestAck gave it; an
// Accepted member becomes Active.
func (e *Engine) Ack(_ context.Context, tx *kv.Tx, now time.Time, raw []byte) (ids.MemberID, error) {
	r, m, err := e.admit(tx, now, raw, signedreq.KindAck, "", false)
	if err != nil {
		return "", err
	}
	var p ackPayload
	if err := strictJSON(r.Payload, &p); err != nil || p.StateDigest == "" {
		return "", fmt.Errorf("%w: an acknowledgement is {\"state_digest\": \"<hex>\"}", ErrBadPayload)
	}
	var ack MemberAck
	if ok, err := getJSON(tx, MemberAcksTable, string(r.MemberID), &ack); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("%w: member %s has no state digest to acknowledge: ask for one first", ErrAckMismatch, r.MemberID)
	}
	if ack.StateDigest != p.StateDigest {
		return "", fmt.Errorf("%w: member %s signed state digest %s, the one to acknowledge is %s", ErrAckMismatch, r.MemberID, p.StateDigest, ack.StateDigest)
	}
	ack.Signed = requestKey(r)
	if err := putJSON(tx, MemberAcksTable, string(r.MemberID), &ack); err != nil {
		return "", err
	}
	if m.Status != MemberActive {
		m.Status = MemberActive
		if err := putJSON(tx, MembersTable, string(r.MemberID), m); err != nil {
			return "", err
		}
	}
	return r.MemberID, nil
}

// admit checks a signed request and records it: the checks of
// signedreq.Checker (service, kind, proposal, freshness, a known member's
// signature), then the replay guard (RequestsTable), then the member's
// standing (active, unless acknowledging). It also drops proposals past
// the configured age and forgets replay keys past the window.
func (e *Engine) admit(tx *kv.Tx, now time.Time, raw []byte, kind signedreq.Kind, proposal string, active bool) (*signedreq.Request, *Member, error) {
	var found *Member
	lookup := func(id ids.MemberID) (*x509.Certificate, bool) {
		m, err := member(tx, id)
		if err != nil {
			return nil, false
		}
		cert, err := crypto.ParseCertPEM([]byte(m.Cert))
		if err != nil {
			return nil, false
		}
		found = m
		return cert, true
	}
	// A checker per request: the replay guard that counts is the table,
	// which every node shares through the ledger.
	checker := signedreq.Checker{ServiceDigest: e.ServiceDigest, Window: e.window()}
	r, err := checker.Check(now, raw, kind, proposal, lookup)
	if err != nil {
		return nil, nil, err
	}
	if active && found.Status != MemberActive {
		return nil, nil, fmt.Errorf("%w: member %s is %s; it must acknowledge its membership first (coco gov ack)", ErrNotActive, r.MemberID, found.Status)
	}
	key := requestKey(r)
	if _, seen := tx.Get(RequestsTable, []byte(key)); seen {
		return nil, nil, fmt.Errorf("%w: this %s of member %s was already accepted: to send it again, sign a new one", signedreq.ErrReplayed, r.Kind, r.MemberID)
	}
	e.forget(tx, now)
	if err := e.dropStale(tx, now); err != nil {
		return nil, nil, err
	}
	tx.Put(RequestsTable, []byte(key), r.Raw)
	return r, found, tx.Err()
}

// requestKey is a request's RequestsTable key: its created_at (16 hex
// digits, so keys sort by time) and its replay key.
func requestKey(r *signedreq.Request) string {
	k := r.ReplayKey()
	return fmt.Sprintf("%016x-%x", uint64(r.CreatedAt.Unix()), k[:])
}

// forgetBatch bounds the replay keys one request forgets.
const forgetBatch = 64

// forget removes from RequestsTable the keys whose created_at is past the
// window: the freshness check refuses such requests anyway. The ledger
// keeps them.
func (e *Engine) forget(tx *kv.Tx, now time.Time) {
	cutoff := now.Add(-e.window()).Unix()
	if cutoff <= 0 {
		return
	}
	end := fmt.Appendf(nil, "%016x", uint64(cutoff))
	items, _ := tx.Scan(RequestsTable, nil, end, forgetBatch)
	for _, it := range items {
		tx.Delete(RequestsTable, it.Key)
	}
}

// dropStale drops the open proposals older than the configured maximum
// age.
func (e *Engine) dropStale(tx *kv.Tx, now time.Time) error {
	var cfg ServiceConfig
	if _, err := getJSON(tx, ServiceConfigTable, ServiceConfigKey, &cfg); err != nil {
		return err
	}
	if cfg.MaxProposalAgeS <= 0 {
		return nil
	}
	return e.eachOpen(tx, func(id string, info *ProposalInfo) (bool, error) {
		if now.Unix()-info.CreatedAt <= cfg.MaxProposalAgeS {
			return false, nil
		}
		info.State = StateDropped
		info.Failure = fmt.Sprintf("open for longer than max_proposal_age_s (%d s)", cfg.MaxProposalAgeS)
		return true, nil
	})
}

// eachOpen calls fn on every open proposal, saving those it changed.
func (e *Engine) eachOpen(tx *kv.Tx, fn func(id string, info *ProposalInfo) (bool, error)) error {
	items, _ := tx.Scan(ProposalsInfoTable, nil, nil, 0)
	for _, it := range items {
		var info ProposalInfo
		if err := json.Unmarshal(it.Value, &info); err != nil {
			return fmt.Errorf("%w: proposal %s: %w", ErrCorrupt, it.Key, err)
		}
		if info.State != StateOpen {
			continue
		}
		changed, err := fn(string(it.Key), &info)
		if err != nil {
			return err
		}
		if changed {
			if err := e.putInfo(tx, string(it.Key), &info); err != nil {
				return err
			}
		}
	}
	return nil
}

// openProposal reads proposal id, which must be Open.
func (e *Engine) openProposal(tx *kv.Tx, id string) (*ProposalInfo, string, error) {
	info, err := GetProposal(tx, id)
	if err != nil {
		return nil, "", err
	}
	if info.State != StateOpen {
		return nil, "", fmt.Errorf("%w: proposal %s is %s", ErrNotOpen, id, info.State)
	}
	proposal, _ := tx.Get(ProposalsTable, []byte(id))
	if info.Ballots == nil {
		info.Ballots = map[string]Ballot{}
	}
	return info, string(proposal), nil
}

// decide resolves an open proposal and, if accepted, applies it. A
// constitution that fails (throws, or runs past its limits) fails the
// proposal, not the request: the failure is recorded for the members to
// see, and the node carries on.
func (e *Engine) decide(ctx context.Context, tx *kv.Tx, id string, info *ProposalInfo, proposal string, c *constitution.Constitution) {
	ro := newOverlay(tx)
	members := slices.Sorted(mapKeys(info.Ballots))
	votes := make([]constitution.Vote, 0, len(members))
	info.VoteFailures = nil
	for _, m := range members {
		b := info.Ballots[m]
		if b.Vote != nil {
			votes = append(votes, constitution.Vote{MemberID: m, Vote: *b.Vote})
			continue
		}
		v, err := evalBallot(ctx, ro, b.Ballot, proposal, info.ProposerID, e.Limits)
		if err != nil {
			if info.VoteFailures == nil {
				info.VoteFailures = map[string]string{}
			}
			info.VoteFailures[m] = err.Error()
			continue
		}
		votes = append(votes, constitution.Vote{MemberID: m, Vote: v})
	}
	state, err := c.Resolve(ctx, ro, proposal, info.ProposerID, votes)
	if err != nil {
		info.State, info.Failure = StateFailed, "resolve: "+err.Error()
		return
	}
	switch state {
	case constitution.StateOpen:
		return
	case constitution.StateRejected:
		info.State = StateRejected
	case constitution.StateAccepted:
		info.State = StateAccepted
		if err := e.apply(ctx, tx, id, proposal, c); err != nil {
			info.State, info.Failure = StateFailed, "apply: "+err.Error()
		}
	}
	info.FinalVotes = make(map[string]bool, len(votes))
	for _, v := range votes {
		info.FinalVotes[v.MemberID] = v.Vote
	}
}

// apply runs the constitution's apply against an overlay and keeps its
// writes and node actions only if it succeeds; an accepted proposal that
// changes the rules or the members then drops the other open ones.
func (e *Engine) apply(ctx context.Context, tx *kv.Tx, id, proposal string, c *constitution.Constitution) error {
	ov := newOverlay(tx)
	h := &applyHost{e: e, ov: ov}
	if err := c.Apply(ctx, ov, h, proposal, id); err != nil {
		return err
	}
	if err := ov.flush(); err != nil {
		return err
	}
	if h.rekey {
		if err := e.Node.Rekey(tx); err != nil {
			return err
		}
	}
	trigger := triggerIn(proposal)
	if trigger == "" {
		return nil
	}
	return e.eachOpen(tx, func(other string, info *ProposalInfo) (bool, error) {
		if other == id {
			return false, nil
		}
		info.State = StateDropped
		info.Failure = fmt.Sprintf("dropped when proposal %s (%s) was accepted", id, trigger)
		return true, nil
	})
}

// triggerIn returns the first action of proposal that drops the other
// open proposals, or "".
func triggerIn(proposal string) string {
	var p struct {
		Actions []struct {
			Name string `json:"name"`
		} `json:"actions"`
	}
	if json.Unmarshal([]byte(proposal), &p) != nil {
		return ""
	}
	for _, a := range p.Actions {
		if slices.Contains(dropTriggers, a.Name) {
			return a.Name
		}
	}
	return ""
}

// constitution returns the compiled constitution in tx's state.
func (e *Engine) constitution(tx *kv.Tx) (*constitution.Constitution, error) {
	raw, ok := tx.Get(ConstitutionTable, []byte(ConstitutionKey))
	if !ok {
		return nil, fmt.Errorf("%w: the service has no constitution", ErrConstitution)
	}
	var src string
	if err := json.Unmarshal(raw, &src); err != nil {
		return nil, fmt.Errorf("%w: the stored constitution is not a JSON string: %w", ErrConstitution, err)
	}
	sum := sha256.Sum256([]byte(src))
	e.mu.Lock()
	c, ok := e.cache[sum]
	e.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := constitution.Compile(src, e.Limits)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConstitution, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cache == nil || len(e.cache) >= 4 { // a constitution changes rarely: keep a few
		e.cache = map[[32]byte]*constitution.Constitution{}
	}
	e.cache[sum] = c
	return c, nil
}

// parseBallot checks a ballot payload: exactly one of {"vote": bool} and
// {"ballot": "<module>"}, and a ballot module that compiles.
func parseBallot(payload []byte, lim constitution.Limits) (Ballot, error) {
	var b Ballot
	if err := strictJSON(payload, &b); err != nil || (b.Vote == nil) == (b.Ballot == "") {
		return Ballot{}, fmt.Errorf("%w: a ballot is {\"vote\": true|false} or {\"ballot\": \"<JS module exporting vote>\"}", ErrBadPayload)
	}
	if b.Ballot != "" {
		if _, err := constitution.CompileBallot(b.Ballot, lim); err != nil {
			return Ballot{}, fmt.Errorf("%w: the ballot does not compile: %w", ErrBadPayload, err)
		}
	}
	return b, nil
}

func evalBallot(ctx context.Context, kv constitution.KV, src, proposal, proposer string, lim constitution.Limits) (bool, error) {
	b, err := constitution.CompileBallot(src, lim)
	if err != nil {
		return false, err
	}
	return b.Vote(ctx, kv, proposal, proposer)
}

// applyHost performs the constitution's node actions within the apply's
// overlay, so a failing apply undoes them too.
type applyHost struct {
	e     *Engine
	ov    *overlay
	rekey bool
}

func (h *applyHost) Action(name, argsJSON string) error {
	switch name {
	case "transition_service_to_open":
		return h.openService()
	case "transition_node_to_trusted":
		return h.nodeStatus(argsJSON, NodePending, NodeTrusted)
	case "remove_node":
		return h.nodeStatus(argsJSON, "", NodeRetired)
	case "set_service_configuration":
		return h.configure(argsJSON)
	case "trigger_ledger_rekey":
		h.rekey = true
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownAction, name)
}

func (h *applyHost) openService() error {
	raw, ok := h.ov.Get(string(ServiceInfoTable), ServiceInfoKey)
	if !ok {
		return errors.New("the service has no service_info")
	}
	var info ServiceInfo
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return fmt.Errorf("service_info: %w", err)
	}
	if info.Status != ServiceOpening {
		return fmt.Errorf("the service is %s, not %s", info.Status, ServiceOpening)
	}
	info.Status = ServiceOpen
	out, _ := json.Marshal(&info)
	return h.ov.Put(string(ServiceInfoTable), ServiceInfoKey, string(out))
}

// Node statuses governance moves between.
const (
	NodePending = "Pending"
	NodeTrusted = "Trusted"
	NodeRetired = "Retired"
)

// nodeStatus moves node args.node_id to status to, from status from (any
// but Retired if from is ""). The record is the node package's; only its
// "status" field is governance's.
func (h *applyHost) nodeStatus(argsJSON, from, to string) error {
	var args struct {
		NodeID string `json:"node_id"`
	}
	if err := json.Unmarshal([]byte(argsJSON), &args); err != nil || args.NodeID == "" {
		return fmt.Errorf("args must name a node_id")
	}
	raw, ok := h.ov.Get(string(NodesTable), args.NodeID)
	if !ok {
		return fmt.Errorf("no node %s", args.NodeID)
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("node %s: %w", args.NodeID, err)
	}
	var status string
	_ = json.Unmarshal(rec["status"], &status)
	switch {
	case status == to:
		return fmt.Errorf("node %s is already %s", args.NodeID, to)
	case status == NodeRetired:
		return fmt.Errorf("node %s is retired", args.NodeID)
	case from != "" && status != from:
		return fmt.Errorf("node %s is %s, not %s", args.NodeID, status, from)
	}
	if to == NodeRetired {
		if err := h.e.Node.CheckNodeRemoval(args.NodeID); err != nil {
			return err
		}
	}
	rec["status"], _ = json.Marshal(to)
	out, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return h.ov.Put(string(NodesTable), args.NodeID, string(out))
}

func (h *applyHost) configure(argsJSON string) error {
	var cfg ServiceConfig
	if raw, ok := h.ov.Get(string(ServiceConfigTable), ServiceConfigKey); ok {
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return fmt.Errorf("service_config: %w", err)
		}
	}
	if err := json.Unmarshal([]byte(argsJSON), &cfg); err != nil {
		return fmt.Errorf("args: %w", err)
	}
	out, _ := json.Marshal(&cfg)
	return h.ov.Put(string(ServiceConfigTable), ServiceConfigKey, string(out))
}

// member reads member id.
func member(tx *kv.Tx, id ids.MemberID) (*Member, error) {
	var m Member
	ok, err := getJSON(tx, MembersTable, string(id), &m)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &signedreq.UnknownMemberError{ID: id}
	}
	return &m, nil
}

// GetProposal reads the record of proposal id.
func GetProposal(tx *kv.Tx, id string) (*ProposalInfo, error) {
	var info ProposalInfo
	ok, err := getJSON(tx, ProposalsInfoTable, id, &info)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoProposal, id)
	}
	return &info, nil
}

func (e *Engine) putInfo(tx *kv.Tx, id string, info *ProposalInfo) error {
	return putJSON(tx, ProposalsInfoTable, id, info)
}

func getJSON(tx *kv.Tx, m kv.MapName, key string, v any) (bool, error) {
	raw, ok := tx.Get(m, []byte(key))
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%w: %s %q: %w", ErrCorrupt, m, key, err)
	}
	return true, nil
}

func putJSON(tx *kv.Tx, m kv.MapName, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tx.Put(m, []byte(key), raw)
	return tx.Err()
}

// strictJSON decodes one JSON object into v, refusing unknown fields and
// trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

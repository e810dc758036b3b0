package audit

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// GovEvent is one step of the service's governance history, in ledger
// order: a signed request the service accepted (Request set), or a new
// state of a proposal (State set; its creation, then each change).
type GovEvent struct {
	TxID ids.TxID
	// A signed request, verified against the members as of the
	// transaction before it.
	Request *signedreq.Request
	// The proposal the request made or acts on, or whose state the
	// transaction set.
	ProposalID string
	State      string
	Failure    string
}

// govState follows the governance tables through the ledger: the members'
// certificates, to verify each signed request against the members of its
// time.
type govState struct {
	service [32]byte
	members map[ids.MemberID]*x509.Certificate
	onEvent func(GovEvent)
	states  map[string]string // proposal id → last state reported

	verifier *attest.Registry
	evidence map[string]string // node id → evidence already verified
	nodes    uint64            // node evidence bundles verified
}

// checkNodes verifies again the attestation evidence each node was
// admitted with, at the time the primary verified it: the bundle verifies
// for its platform and binds the key of the node's certificate. A record
// rewritten with the same evidence (a change of status) is not verified
// twice.
func (g *govState) checkNodes(ws *kv.WriteSet) error {
	for _, w := range ws.Writes(gov.NodesTable) {
		if w.Deleted {
			continue
		}
		id := string(w.Key)
		var ni gov.NodeInfo
		if err := json.Unmarshal(w.Value, &ni); err != nil {
			return fmt.Errorf("node %s: %w", id, err)
		}
		if ni.Evidence == "" || g.evidence[id] == ni.Evidence {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(ni.Evidence)
		if err != nil {
			return fmt.Errorf("node %s: evidence is not base64: %w", id, err)
		}
		b, err := attest.UnmarshalBundle(raw)
		if err != nil {
			return fmt.Errorf("node %s: %w", id, err)
		}
		at, err := time.Parse(time.RFC3339, ni.VerifiedAt)
		if err != nil {
			return fmt.Errorf("node %s: verified_at %q: %w", id, ni.VerifiedAt, err)
		}
		v, err := g.verifier.Verify(b, at)
		if err != nil {
			return fmt.Errorf("node %s: its %s evidence does not verify (as of %s): %w", id, b.Platform, ni.VerifiedAt, err)
		}
		cert, err := crypto.ParseCertPEM([]byte(ni.Cert))
		if err != nil {
			return fmt.Errorf("node %s: %w", id, err)
		}
		want, err := attest.ReportDataForKey(cert.PublicKey)
		if err != nil || want != v.ReportData {
			return fmt.Errorf("node %s: its evidence does not bind the key of its certificate", id)
		}
		if v.Measurement.String() != ni.Measurement || v.Platform != ni.Platform {
			return fmt.Errorf("node %s: recorded as %s %s, its evidence says %s %s", id, ni.Platform, ni.Measurement, v.Platform, v.Measurement)
		}
		g.evidence[id] = ni.Evidence
		g.nodes++
	}
	return nil
}

// check verifies the signed requests a transaction stored, against the
// members before it, then applies its changes to the members, and
// reports the events.
func (g *govState) check(id ids.TxID, ws *kv.WriteSet) (int, error) {
	verified := 0
	for _, w := range ws.Writes(gov.RequestsTable) {
		if w.Deleted { // the replay guard forgetting an old key
			continue
		}
		r, err := signedreq.Parse(w.Value)
		if err != nil {
			return verified, fmt.Errorf("governance request %s: %w", w.Key, err)
		}
		if r.ServiceDigest != g.service {
			return verified, fmt.Errorf("governance request %s of member %s was signed for another service", w.Key, r.MemberID)
		}
		cert, ok := g.members[r.MemberID]
		if !ok {
			return verified, fmt.Errorf("governance request %s is signed as %s, not a member at that point", w.Key, r.MemberID)
		}
		if err := r.Verify(cert); err != nil {
			return verified, fmt.Errorf("governance request %s of member %s: %w", w.Key, r.MemberID, err)
		}
		verified++
		if g.onEvent != nil {
			pid := r.ProposalID
			if r.Kind == signedreq.KindProposal { // its id is its replay key
				k := r.ReplayKey()
				pid = hex.EncodeToString(k[:])
			}
			g.onEvent(GovEvent{TxID: id, Request: r, ProposalID: pid})
		}
	}
	for _, w := range ws.Writes(gov.MembersTable) {
		mid := ids.MemberID(w.Key)
		if w.Deleted {
			delete(g.members, mid)
			continue
		}
		var m gov.Member
		if err := json.Unmarshal(w.Value, &m); err != nil {
			return verified, fmt.Errorf("member %s: %w", mid, err)
		}
		cert, err := crypto.ParseCertPEM([]byte(m.Cert))
		if err != nil {
			return verified, fmt.Errorf("member %s: %w", mid, err)
		}
		if ids.MemberID(ids.Fingerprint(cert.Raw)) != mid {
			return verified, fmt.Errorf("member %s: its certificate's id is %s", mid, ids.Fingerprint(cert.Raw))
		}
		g.members[mid] = cert
	}
	if err := g.checkNodes(ws); err != nil {
		return verified, err
	}
	if g.onEvent != nil {
		for _, w := range ws.Writes(gov.ProposalsInfoTable) {
			var info gov.ProposalInfo
			if w.Deleted || json.Unmarshal(w.Value, &info) != nil || g.states[string(w.Key)] == info.State {
				continue // a ballot that left the state as it was
			}
			g.states[string(w.Key)] = info.State
			g.onEvent(GovEvent{TxID: id, ProposalID: string(w.Key), State: info.State, Failure: info.Failure})
		}
	}
	return verified, nil
}

func newGovState(serviceCert *x509.Certificate, onEvent func(GovEvent)) (*govState, error) {
	ver, err := attest.NewVerifier()
	if err != nil {
		return nil, err
	}
	return &govState{service: sha256.Sum256(serviceCert.Raw), members: map[ids.MemberID]*x509.Certificate{}, onEvent: onEvent,
		states: map[string]string{}, verifier: ver, evidence: map[string]string{}}, nil
}

// String prints an event on one line.
func (e GovEvent) String() string {
	if e.Request == nil {
		s := fmt.Sprintf("%s  proposal %s is %s", e.TxID, e.ProposalID, e.State)
		if e.Failure != "" {
			s += ": " + e.Failure
		}
		return s
	}
	r := e.Request
	s := fmt.Sprintf("%s  %s  %s by member %s", e.TxID, r.CreatedAt.UTC().Format(time.RFC3339), r.Kind, r.MemberID)
	if e.ProposalID != "" {
		s += ", proposal " + e.ProposalID
	}
	if len(r.Payload) > 0 {
		s += ": " + string(r.Payload)
	}
	return s
}

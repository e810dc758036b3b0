package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	cococrypto "github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
)

// Member is a consortium member's identity: it signs governance requests.
type Member struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// ParseMember reads a member's PEM certificate and private key and checks
// that they belong together.
func ParseMember(certPEM, keyPEM []byte) (*Member, error) {
	cert, err := cococrypto.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: member certificate: %w", ErrConfig, err)
	}
	key, err := cococrypto.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: member key: %w", ErrConfig, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: the member key is not the key of the member certificate", ErrConfig)
	}
	return &Member{Cert: cert, Key: key}, nil
}

// ID is the member's id: the lowercase hex SHA-256 of its DER certificate.
func (m *Member) ID() string { return ids.Fingerprint(m.Cert.Raw) }

// Governance request kinds, for Sign.
const (
	KindProposal   = string(signedreq.KindProposal)
	KindBallot     = string(signedreq.KindBallot)
	KindWithdrawal = string(signedreq.KindWithdrawal)
	KindAck        = string(signedreq.KindAck)
)

// Sign makes a signed governance request (COSE_Sign1) of kind for the
// service whose certificate is servicePEM, created now: what the
// /gov endpoints take, with Content-Type application/cose. proposalID
// names the proposal of a ballot or withdrawal.
func (m *Member) Sign(servicePEM []byte, kind, proposalID string, payload []byte, now time.Time) ([]byte, error) {
	b, _ := pem.Decode(servicePEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: the service certificate is not PEM", ErrConfig)
	}
	return m.sign(sha256.Sum256(b.Bytes), kind, proposalID, payload, now)
}

func (m *Member) sign(service [32]byte, kind, proposalID string, payload []byte, now time.Time) ([]byte, error) {
	return signedreq.Sign(rand.Reader, m.Key, m.Cert, signedreq.Request{
		Kind: signedreq.Kind(kind), CreatedAt: now, ServiceDigest: service, ProposalID: proposalID, Payload: payload,
	})
}

// Proposal is a proposal as the service reports it.
type Proposal struct {
	ProposalID   string            `json:"proposal_id"`
	ProposerID   string            `json:"proposer_id"`
	State        string            `json:"state"`
	CreatedAt    int64             `json:"created_at"`
	Ballots      map[string]Ballot `json:"ballots"`
	FinalVotes   map[string]bool   `json:"final_votes,omitempty"`
	VoteFailures map[string]string `json:"vote_failures,omitempty"`
	Failure      string            `json:"failure,omitempty"`
	// Proposal is the proposal itself ({"actions": [...]}); only
	// GovProposal fills it.
	Proposal json.RawMessage `json:"proposal,omitempty"`
	// TransactionID is the transaction of the request that returned the
	// proposal (a proposal, ballot or withdrawal): once it is committed,
	// every node applies what it did. Empty for reads.
	TransactionID string `json:"transaction_id,omitempty"`
}

// Ballot is a member's ballot: a vote, or a JS ballot module.
type Ballot struct {
	Vote   *bool  `json:"vote,omitempty"`
	Ballot string `json:"ballot,omitempty"`
}

// Action is one action of a proposal.
type Action struct {
	Name string `json:"name"`
	Args any    `json:"args"`
}

// ErrNoServiceDigest reports a governance call on a client made without
// ServiceCertPEM: requests must name the service they are meant for.
var ErrNoServiceDigest = errors.New("client: governance requests need the service certificate (Config.ServiceCertPEM)")

// postSigned signs and posts a governance request, decoding the answer.
func (c *Client) postSigned(ctx context.Context, m *Member, path, kind, proposalID string, payload []byte, out any) error {
	if c.service == ([32]byte{}) {
		return ErrNoServiceDigest
	}
	raw, err := m.sign(c.service, kind, proposalID, payload, time.Now())
	if err != nil {
		return fmt.Errorf("client: sign %s: %w", kind, err)
	}
	return c.PostSigned(ctx, path, raw, out)
}

// PostSigned posts an already signed governance request to path and
// decodes the answer into out. A *Proposal also gets the transaction id.
func (c *Client) PostSigned(ctx context.Context, path string, signed []byte, out any) error {
	return c.callAs(ctx, http.MethodPost, path, "application/cose", signed, func(r *http.Response) error {
		if err := decodeBody(r, out); err != nil {
			return err
		}
		if p, ok := out.(*Proposal); ok {
			p.TransactionID = r.Header.Get(txIDHeader)
		}
		return nil
	})
}

// Propose submits proposal ({"actions": [...]}, JSON) signed by m, an
// active member, and returns it as recorded: its id and state (a
// constitution may decide at once).
func (c *Client) Propose(ctx context.Context, m *Member, proposal []byte) (*Proposal, error) {
	var p Proposal
	return &p, c.postSigned(ctx, m, "/gov/proposals", KindProposal, "", proposal, &p)
}

// ProposeActions is Propose of {"actions": actions}.
func (c *Client) ProposeActions(ctx context.Context, m *Member, actions ...Action) (*Proposal, error) {
	body, err := json.Marshal(map[string][]Action{"actions": actions})
	if err != nil {
		return nil, fmt.Errorf("client: encode proposal: %w", err)
	}
	return c.Propose(ctx, m, body)
}

// Vote votes for (accept) or against proposal id, and returns the
// proposal after the vote.
func (c *Client) Vote(ctx context.Context, m *Member, id string, accept bool) (*Proposal, error) {
	body, _ := json.Marshal(map[string]bool{"vote": accept})
	var p Proposal
	return &p, c.postSigned(ctx, m, "/gov/proposals/"+url.PathEscape(id)+"/ballots", KindBallot, id, body, &p)
}

// VoteBallot submits a JS ballot (a module exporting
// vote(proposal, proposerId)), evaluated whenever the proposal is
// resolved.
func (c *Client) VoteBallot(ctx context.Context, m *Member, id, ballot string) (*Proposal, error) {
	body, _ := json.Marshal(map[string]string{"ballot": ballot})
	var p Proposal
	return &p, c.postSigned(ctx, m, "/gov/proposals/"+url.PathEscape(id)+"/ballots", KindBallot, id, body, &p)
}

// Withdraw withdraws proposal id; m must be its proposer.
func (c *Client) Withdraw(ctx context.Context, m *Member, id string) (*Proposal, error) {
	var p Proposal
	return &p, c.postSigned(ctx, m, "/gov/proposals/"+url.PathEscape(id)+"/withdraw", KindWithdrawal, id, nil, &p)
}

// GovProposal returns proposal id with its actions.
func (c *Client) GovProposal(ctx context.Context, id string) (*Proposal, error) {
	var p Proposal
	_, err := c.Do(ctx, http.MethodGet, "/gov/proposals/"+url.PathEscape(id), nil, &p)
	return &p, err
}

// GovProposals lists every proposal (without its actions).
func (c *Client) GovProposals(ctx context.Context) ([]Proposal, error) {
	var out struct {
		Proposals []Proposal `json:"proposals"`
	}
	_, err := c.Do(ctx, http.MethodGet, "/gov/proposals", nil, &out)
	return out.Proposals, err
}

// Ack makes m an active member: it asks for the state digest to
// acknowledge (authenticated by the client's TLS certificate, which must
// be m's) and signs it.
func (c *Client) Ack(ctx context.Context, m *Member) error {
	var d struct {
		StateDigest string `json:"state_digest"`
	}
	if _, err := c.Do(ctx, http.MethodPost, "/gov/members/state-digest", nil, &d); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"state_digest": d.StateDigest})
	return c.postSigned(ctx, m, "/gov/members/ack", KindAck, "", body, nil)
}

// GovService is the service as governance sees it.
type GovService struct {
	Status             string          `json:"status"`
	ServiceCertificate string          `json:"service_certificate"`
	Configuration      json.RawMessage `json:"configuration"`
	Constitution       string          `json:"constitution"`
	ConstitutionDigest string          `json:"constitution_digest"`
}

// Service returns the service's status, configuration and constitution.
func (c *Client) Service(ctx context.Context) (*GovService, error) {
	var s GovService
	_, err := c.Do(ctx, http.MethodGet, "/gov/service", nil, &s)
	return &s, err
}

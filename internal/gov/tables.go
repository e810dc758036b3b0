package gov

import (
	"encoding/json"

	"github.com/cocoledger/coco/internal/kv"
)

// The governance tables. They are public: everything governance does is in
// the ledger in clear and can be re-verified offline. Values are JSON.
const (
	// MembersTable: member id → Member.
	MembersTable kv.MapName = "public:coco.gov.members"
	// UsersTable: user id → User.
	UsersTable kv.MapName = "public:coco.gov.users"
	// NodesTable: node id → the node's record (the node package's).
	NodesTable kv.MapName = "public:coco.gov.nodes"
	// NodeMeasurementsTable is the join allow-list: key "<platform>:<hex
	// measurement>", value {"platform", "measurement"}.
	NodeMeasurementsTable kv.MapName = "public:coco.gov.node_measurements"
	// JoinPolicyTable: platform → JoinPolicy. A platform without an entry
	// may not join; the accepted measurements are NodeMeasurementsTable's.
	JoinPolicyTable kv.MapName = "public:coco.gov.join_policy"
	// ServiceInfoTable: ServiceInfoKey → ServiceInfo.
	ServiceInfoTable kv.MapName = "public:coco.gov.service_info"
	// ServiceConfigTable: ServiceConfigKey → ServiceConfig.
	ServiceConfigTable kv.MapName = "public:coco.gov.service_config"
	// ConstitutionTable: ConstitutionKey → the constitution's source as a
	// JSON string.
	ConstitutionTable kv.MapName = "public:coco.gov.constitution"
	// ProposalsTable: proposal id → the proposal as its proposer signed it
	// ({"actions": [...]}, JSON).
	ProposalsTable kv.MapName = "public:coco.gov.proposals"
	// ProposalsInfoTable: proposal id → ProposalInfo.
	ProposalsInfoTable kv.MapName = "public:coco.gov.proposals_info"
	// RequestsTable holds every signed request governance accepted, as the
	// member sent it (COSE_Sign1 bytes), under RequestKey: the ledger
	// keeps each, and the table's current keys are the replay guard.
	RequestsTable kv.MapName = "public:coco.gov.requests"
	// MemberAcksTable: member id → MemberAck, the state digest a member is
	// to acknowledge and, once it has, its signed acknowledgement.
	MemberAcksTable kv.MapName = "public:coco.gov.member_acks"
)

// Single keys of single-entry tables.
const (
	ServiceInfoKey   = "service"
	ServiceConfigKey = "config"
	ConstitutionKey  = "constitution"
)

// NodeInfo is a NodesTable value: a node of the service, as the primary
// recorded it when the node joined (the genesis node records itself).
type NodeInfo struct {
	Cert        string `json:"cert"`
	RPCAddress  string `json:"rpc_address"`
	NodeAddress string `json:"node_address"`
	// Status is NodePending, NodeTrusted or NodeRetired.
	Status      string `json:"status"`
	Platform    string `json:"platform"`
	Measurement string `json:"measurement"`
	// Evidence is the attestation bundle the node joined with (base64
	// CBOR), so an auditor can verify it again; empty for the genesis node.
	Evidence string `json:"evidence,omitempty"`
	// VerifiedAt is when the primary verified the evidence (RFC 3339):
	// the time its certificates and collateral are checked against again.
	VerifiedAt string `json:"verified_at,omitempty"`
}

// JoinPolicy is a JoinPolicyTable value: the terms on which nodes of a
// platform may join (attest.PlatformPolicy, set by set_node_join_policy).
type JoinPolicy struct {
	AllowInsecure bool     `json:"allow_insecure"`
	AllowDebug    bool     `json:"allow_debug"`
	MinTCB        string   `json:"min_tcb,omitempty"`
	HostData      []string `json:"host_data,omitempty"`
	RTMRs         []string `json:"rtmrs,omitempty"`
}

// Member statuses.
const (
	// MemberAccepted: voted in (or named at genesis), not yet
	// acknowledged; it may acknowledge, nothing else.
	MemberAccepted = "Accepted"
	// MemberActive: counts in resolutions; may propose and vote.
	MemberActive = "Active"
)

// Member is a MembersTable value.
type Member struct {
	Cert          string          `json:"cert"`
	Status        string          `json:"status"`
	MemberData    json.RawMessage `json:"member_data,omitempty"`
	EncryptionKey string          `json:"encryption_key,omitempty"`
}

// User is a UsersTable value.
type User struct {
	Cert     string          `json:"cert"`
	UserData json.RawMessage `json:"user_data,omitempty"`
}

// Service statuses.
const (
	// ServiceOpening: governance works, application endpoints answer 503.
	ServiceOpening = "Opening"
	// ServiceOpen: the members opened the service.
	ServiceOpen = "Open"
)

// ServiceInfo is the ServiceInfoTable value.
type ServiceInfo struct {
	Cert   string `json:"cert"`
	Status string `json:"status"`
}

// ServiceConfig is the ServiceConfigTable value, set by
// set_service_configuration. Absent fields keep their defaults.
type ServiceConfig struct {
	// AutoTrustNodes: a joining node whose evidence is accepted becomes
	// Trusted without a transition_node_to_trusted proposal.
	AutoTrustNodes bool `json:"auto_trust_nodes"`
	// MaxProposalAgeS: how long a proposal may stay Open, in seconds;
	// older open proposals are Dropped when the next request arrives. 0:
	// no limit.
	MaxProposalAgeS int64 `json:"max_proposal_age_s,omitempty"`
	// RecoveryThreshold: how many recovery shares restore the ledger
	// secret (used by recovery).
	RecoveryThreshold int `json:"recovery_threshold,omitempty"`
}

// Proposal states.
const (
	StateOpen      = "Open"
	StateAccepted  = "Accepted"
	StateRejected  = "Rejected"
	StateWithdrawn = "Withdrawn"
	// StateFailed: accepted, but apply threw; nothing it wrote was kept.
	StateFailed = "Failed"
	// StateDropped: closed without a decision, because the constitution or
	// the membership changed under it, or it grew too old.
	StateDropped = "Dropped"
)

// ProposalInfo is a ProposalsInfoTable value.
type ProposalInfo struct {
	ProposerID string `json:"proposer_id"`
	State      string `json:"state"`
	// CreatedAt is the proposal request's created_at, Unix seconds.
	CreatedAt int64 `json:"created_at"`
	// Ballots are the members' ballots, by member id, as submitted.
	Ballots map[string]Ballot `json:"ballots"`
	// FinalVotes are the votes resolve decided on, once the proposal is
	// no longer Open (JS ballots evaluated).
	FinalVotes map[string]bool `json:"final_votes,omitempty"`
	// VoteFailures says why a JS ballot could not be evaluated; such a
	// ballot is not counted.
	VoteFailures map[string]string `json:"vote_failures,omitempty"`
	// Failure says why apply failed (StateFailed) or why the proposal was
	// dropped (StateDropped).
	Failure string `json:"failure,omitempty"`
}

// Ballot is one member's ballot: a plain vote or a JS ballot module
// (export function vote(proposal, proposerId)).
type Ballot struct {
	Vote   *bool  `json:"vote,omitempty"`
	Ballot string `json:"ballot,omitempty"`
}

// MemberAck is a MemberAcksTable value.
type MemberAck struct {
	// StateDigest is the digest the member is to sign: the root of the
	// service's Merkle tree when it asked for it, hex.
	StateDigest string `json:"state_digest"`
	// Signed is the key (RequestKey) of its signed acknowledgement in
	// RequestsTable, once it has acknowledged.
	Signed string `json:"signed,omitempty"`
}

// Package gov is consortium governance: members' signed requests drive
// proposals through the constitution, and everything is recorded in the
// governance tables, which are public, so the ledger holds the whole
// history in clear and an auditor can re-verify it offline.
//
// # Requests
//
// Every governance write is a COSE_Sign1 request (internal/gov/signedreq)
// signed by a member. Engine admits one in this order: signedreq's checks
// (well formed, the right kind and proposal for the endpoint, meant for
// this service, created_at within Window of the node's clock, signed by a
// member's key), then the replay guard, then the member's standing (Active
// to propose, vote or withdraw; Accepted or Active to acknowledge). An
// admitted request is stored as sent in RequestsTable under
// "<created_at, 16 hex digits>-<replay key, hex>": the ledger keeps every
// one, and the keys still in the table are the replay guard, shared by
// every node because the table is replicated. Keys older than the window
// are deleted (a few per request), as the freshness check refuses such
// requests anyway. A request that is refused writes nothing.
//
// # Proposals
//
// A proposal is {"actions": [{"name", "args"}, ...]}; its id is the hex
// replay key of the signed request. The constitution (ConstitutionTable,
// internal/gov/constitution) validates it, then Engine resolves it at
// once and after every ballot: JS ballots are evaluated into votes against
// the current state (one that throws is not counted and says why in
// vote_failures), resolve decides Open, Accepted or Rejected, and an
// accepted proposal is applied in the same transaction.
//
// Apply writes through an overlay: its table writes and node actions are
// kept only if it returns normally, so a proposal whose apply throws is
// Failed with nothing done. A constitution that throws or runs past its
// limits in resolve fails the proposal, not the node. When a proposal
// that changes the constitution or the members (set_constitution,
// set_member, remove_member) is accepted, every other open proposal is
// Dropped: it would otherwise be decided under rules or by voters other
// than those it was put to. With ServiceConfig.MaxProposalAgeS set, open
// proposals older than that are Dropped when the next request arrives.
//
//	        propose                  resolve: Accepted
//	────────────────────► Open ─────────────────────────► Accepted
//	                      │ │ │      (apply threw)  ────► Failed
//	 resolve: Rejected ◄──┘ │ └──► Withdrawn (proposer)
//	                        └────► Dropped (rules/members changed, age)
//
// # Node actions
//
// The default constitution's transition_service_to_open,
// transition_node_to_trusted, remove_node, set_service_configuration and
// trigger_ledger_rekey call coco.host. Engine performs them: the service
// and node statuses and the configuration are table writes (in the
// overlay); remove_node first asks NodeHost.CheckNodeRemoval, which
// refuses a removal that would leave no working majority; the rekey is
// NodeHost.Rekey on the transaction once apply has succeeded. The node
// then acts on what the tables say (it opens its application endpoints,
// admits a trusted node, removes a retired one from the raft
// configuration).
//
// # Members
//
// A member voted in by set_member (or named at genesis) is Accepted. It
// asks the node for the digest of the current state (RequestAck records
// it in MemberAcksTable) and signs an acknowledgement of it (Ack); it is
// then Active, and counts.
//
// # Concurrency
//
// An Engine may be used from any goroutine: each call works on the
// caller's transaction, and the only shared state is the cache of
// compiled constitutions, behind a mutex. The node serialises governance
// writes through its own commit path; a request whose transaction
// conflicts is re-run from the start, which is safe because Engine's
// calls have no effect outside the transaction (NodeHost's methods must
// not either).
package gov

// Package signedreq signs, decodes, verifies and admits Coco's signed
// governance requests: every governance write (a proposal, a ballot, a
// withdrawal, a member's acknowledgement) is a COSE_Sign1 (RFC 9052) signed
// with the member's private key. The ledger stores the signed bytes, so
// anyone can later check that the member made exactly that request, for
// this service, at that time.
//
// Sign is for the CLI and the client SDK. Parse and Request.Verify are the
// building blocks; Checker.Check is the node's whole admission policy:
// format, endpoint, service, freshness, member, signature and replay.
//
// # Wire format, version 1
//
//	COSE_Sign1_Tagged = #6.18([                          ; tag 18, array of 4
//	┌─────────────────────────────────────────────────────────────────────────┐
//	│ protected: bstr .cbor {                               ; signed          │
//	│   1 (alg): -7 ES256 | -35 ES384 | -36 ES512   ; P-256 | P-384 | P-521   │
//	│   4 (kid): bstr(64)                 ; member id: lowercase hex ASCII of │
//	│                                     ; SHA-256(member certificate DER)   │
//	│   "coco.gov.msg.type": "proposal" / "ballot" / "withdrawal" / "ack"     │
//	│   "coco.gov.msg.created_at": uint   ; seconds since the Unix epoch      │
//	│   "coco.gov.msg.service": bstr(32)  ; SHA-256(service certificate DER)  │
//	│   ? "coco.gov.msg.proposal_id": tstr ; 1-64 lowercase hex; present in   │
//	│                                      ; ballots and withdrawals only     │
//	│   ? 3 (content type): "application/json"  ; accepted, never required    │
//	│ }                                                                       │
//	├─────────────────────────────────────────────────────────────────────────┤
//	│ unprotected: {}                                       ; must be empty   │
//	├─────────────────────────────────────────────────────────────────────────┤
//	│ payload: bstr                         ; the request body, e.g. JSON:    │
//	│                                       ;  proposal   {"actions":[…]}     │
//	│                                       ;  ballot     {"vote": true}      │
//	│                                       ;  withdrawal empty               │
//	│                                       ;  ack        {"state_digest":…}  │
//	├─────────────────────────────────────────────────────────────────────────┤
//	│ signature: bstr                       ; r ‖ s, RFC 9053 §2.1            │
//	└─────────────────────────────────────────────────────────────────────────┘
//	])
//
// The signature is over the RFC 9052 Sig_structure, with no external data:
//
//	ToBeSigned = ["Signature1", protected (the exact bytes), h'', payload]
//
// The kid is a byte string, as RFC 9052 requires, holding the member id's
// 64 ASCII characters: the form CCF tooling produces, and the id as it
// appears everywhere else in Coco. Text labels for the Coco parameters stay
// clear of the IANA integer registry, as CCF's "ccf.gov.msg.*" do.
//
// Any COSE library can make a request; Parse is strict about what it
// accepts, so that each request has one meaning and one stored encoding:
//
//   - the message is tagged (18), at most MaxSize bytes, and encoded in
//     RFC 8949 §4.2.1 deterministic form: definite and shortest lengths,
//     no trailing data;
//   - the unprotected header is the empty map: nothing in it is signed, so
//     nothing unsigned can reach the ledger with a request;
//   - the payload is attached, possibly empty;
//   - the protected header has exactly the parameters above, each of the
//     type shown; any other parameter, crit (2) included, is refused.
//     Its map may be in any key order, since libraries differ, and is
//     verified as the signer encoded it.
//
// There is no version field. A later version will add or redefine
// protected parameters, which a version 1 parser refuses, so a request is
// never read under the wrong version.
//
// # Freshness and replay
//
// A request names the service it is for (a request for a test service is
// useless against production), its kind (a ballot is not a proposal), and,
// for a ballot or withdrawal, its proposal (a ballot cannot be moved to
// another proposal). Checker.Check refuses a request whose created_at is
// more than Checker.Window from the node's clock either way, and one whose
// replay key it has already accepted.
//
// The replay key is the SHA-256 of ToBeSigned, not of the raw bytes. Raw
// bytes are not unique to a request: ECDSA signatures are malleable, (r, s)
// and (r, n−s) both verify, and a member who signs the same content twice
// gets two valid signatures. Anyone could therefore turn one accepted
// request into another with a fresh digest of its raw bytes. ToBeSigned
// holds exactly what the member signed, so every such twin has the same
// key. Normalising s instead would make Parse refuse half of what standard
// ECDSA signers produce. Two requests with the same content signed in the
// same second are one request: the second is refused.
//
// The guard only has to remember a key while a copy could pass the
// freshness check, so it forgets requests created more than Window before
// the node's clock (ReplayGuard.Forget) and is bounded by the number of
// requests accepted within 2×Window. Everything is a function of its
// arguments: time is a parameter and nothing runs in the background. The
// node records each accepted request's ReplayKey and CreatedAt in the
// ledger, and feeds them to ReplayGuard.Remember on every node and after a
// restart, so that all nodes refuse the same replays.
//
// # Invariants
//
//   - Parse accepts what Sign produces and returns the fields Sign was
//     given, CreatedAt truncated to the second.
//   - A Request from Parse is consistent: Kind is valid, ProposalID is set
//     exactly for ballots and withdrawals, MemberID is 64 lowercase hex
//     characters, CreatedAt is in UTC.
//   - Verify and ReplayKey use the bytes Parse decoded, never the exported
//     fields, which are a copy: changing them changes nothing verified.
//   - Every error from Parse, Verify and Check matches exactly one sentinel
//     under errors.Is, and its message says what to fix.
//
// # Concurrency
//
// Sign, Parse, Request.Verify and Request.ReplayKey are safe for concurrent
// use; a Request is not modified by them. Checker.Check and ReplayGuard's
// methods modify the guard: calls on one Checker or ReplayGuard must be
// serialised by the caller.
package signedreq

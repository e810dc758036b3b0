// Package attest is the boundary to the trusted execution environment a node
// runs in: sealing secrets to the platform, producing attestation evidence
// that binds the node's key, verifying other nodes' evidence, and deciding by
// policy whether that evidence may join the service.
//
// The pieces:
//
//   - Platform (New, Virtual): what a node runs in. It seals and unseals
//     secrets and produces evidence (a Bundle) binding 64 bytes of
//     ReportData; Coco binds ReportDataForKey(node public key), i.e.
//     SHA-256 of the key's PKIX DER followed by 32 zero bytes.
//   - Bundle: the versioned, deterministic CBOR evidence bundle
//     {0: version, 1: platform, 2: evidence, 3: [endorsements]} sent by a
//     joining node and served at GET /node/quotes. UnmarshalBundle is
//     strict and size-limited (docs/attestation.md has the format).
//   - Verifier (NewVerifier → *Registry): checks a bundle for its platform
//     and returns Verified (measurement, report data, Secure, TCB). It is
//     separate from Platform because a node checks evidence of platforms
//     other than its own.
//   - Policy: a pure decision over Verified and the presented key:
//     platform accepted, insecure evidence allowed, report data bound to the
//     key, measurement on the allow-list. Refusals are *RefusedError with a
//     stable Reason. Policy.Admit is verify-then-check, the whole join
//     decision.
//
// Platforms:
//
//   - "virtual": NO HARDWARE AND NO SECURITY. Sealing is not confidential:
//     the sealed blob is the plaintext behind a marker header, and the
//     caller stores it in a 0600 file; anyone who can read the node's data
//     directory can read its ledger secret and service key. Evidence is not
//     evidence: it is an unsigned CBOR map {1: measurement, 2: report_data},
//     so ANYONE CAN FORGE IT with any measurement and any key. The verifier
//     checks its structure only and reports Secure=false; a policy accepts
//     it only with AllowInsecure. The measurement is a code id from the
//     configuration (64 hex digits, WithVirtualCodeID) or, by default,
//     SHA-256 of the running executable, hashed once per process. Virtual
//     exists for development and tests, and says so in every blob.
//   - "sev-snp" (snp.go, snp_platform.go): AMD SEV-SNP through
//     go-sev-guest. Evidence is the raw attestation report; endorsements
//     the VCEK (or VLEK) and optionally ASK/ASVK and ARK, which must equal
//     the AMD roots pinned in the binary (Milan, Genoa). Verification is
//     offline (nothing is fetched): signature, chain, validity at now,
//     product line, reported TCB against the VCEK's, chip id. Judging the
//     debug bit, the TCB level, the host data and the measurement is the
//     Policy's. The platform (a guest's evidence and sealing with the
//     firmware's derived key) needs the SNP guest device.
//   - "tdx" (tdx.go, tdx_platform.go): Intel TDX through go-tdx-guest.
//     Evidence is the raw quote (v4, its PCK chain inside); endorsements
//     are exactly five, in order: TCB info, QE identity (Intel PCS JSON),
//     PCK CRL, root CA CRL (DER), TCB signing chain (NewTDXBundle builds
//     them). Verification is offline: the PCK chain to the Intel SGX Root
//     CA pinned in the binary, both CRLs, the collateral's signatures and
//     expiry at now, the quote's and QE report's signatures, the QE
//     identity and the TCB level (go-tdx-guest accepts only UpToDate).
//     VerifyTDXQuote checks a quote without collateral (genuine, TCB not
//     evaluated), for operators. The platform produces quotes through
//     configfs-tsm or /dev/tdx_guest; it cannot seal.
//
// Invariants:
//
//   - Unseal(Seal(p)) == p on the same platform instance; a blob sealed by
//     one platform kind is refused by another.
//   - Every bundle has exactly one encoding: UnmarshalBundle accepts only
//     what Marshal produces, so decode→encode is byte-identical.
//   - A Verifier accepts a bundle of platform P only through P's verifier,
//     and Verified.Platform == Bundle.Platform.
//   - Policy.Check returns nil only if the platform has an entry, insecure
//     evidence is explicitly allowed, report data equals
//     ReportDataForKey(pub), and the measurement is on the allow-list.
//
// Errors: sentinels are prefixed "attest:"; *UnknownPlatformError matches
// ErrUnknownPlatform and *RefusedError matches ErrRefused.
//
// Concurrency: Platform implementations, Registry and the virtual verifier
// are immutable and safe for concurrent use; Policy is a value read by its
// methods, safe to share as long as no one mutates its map. Bundle and
// Verified are plain values owned by the caller.
package attest

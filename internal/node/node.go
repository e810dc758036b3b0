package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/consensus"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/gov/constitution"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/internal/vfs"
)

// Sentinel errors.
var (
	ErrFailed          = errors.New("node: failed")
	ErrMissingSecrets  = errors.New("node: ledger has entries but the data directory has no sealed secrets")
	ErrServiceMismatch = errors.New("node: service certificate does not match the ledger")
)

// Clock is the node's source of time (injected so tests can control it).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options are the node's injected edges. Zero values mean the real ones.
type Options struct {
	FS     vfs.FS
	Rand   io.Reader
	Clock  Clock
	Logger *slog.Logger
	// Listener is the RPC listener Run serves on (default: listen on
	// network.rpc_address).
	Listener net.Listener
	// NodeListener is the node-to-node listener (default: listen on
	// network.node_address).
	NodeListener net.Listener
	// NewTransport, if set, makes the node-to-node transport instead of
	// mutual TLS on NodeListener: tests run whole networks in one process
	// over a transport.MemNetwork. The node records network.node_address
	// as its address.
	NewTransport func(local uint64, h transport.Handler, fh transport.ForwardHandler) (transport.Transport, error)
	// Context, if set, stops Open when done while a joining node waits
	// for the members to trust it (Run passes its own).
	Context context.Context
}

// Node is one running Coco node.
type Node struct {
	cfg      *Config
	log      *slog.Logger
	fs       vfs.FS
	rand     io.Reader
	clock    Clock
	platform attest.Platform
	verifier *attest.Registry

	store   *kv.Store
	ledger  *ledger.Ledger
	tree    *merkle.Tree
	secrets *crypto.LedgerSecrets

	storage *consensus.Storage
	replica *consensus.Replica
	tr      transport.Transport
	raftID  uint64
	// nodeAddress is the node-to-node address recorded in the nodes table.
	nodeAddress string
	// ledgerPeers are the node addresses the durable ledger named at start
	// (see scanLedgerPeers); read-only afterwards.
	ledgerPeers map[ids.NodeID]string
	// replicaReady is closed once replica is set: messages that arrive
	// before are dropped (raft retransmits).
	replicaReady chan struct{}

	// orderMu orders everything that assigns or undoes seqnos: commits and
	// signatures on the primary (with their raft proposals), entries
	// applied from the ledger, rollbacks, and role changes. The fields
	// below it are guarded by it.
	orderMu     sync.Mutex
	primaryView ids.View // view this node is primary of; 0 when not primary
	peersStale  bool     // the nodes table changed since the last refreshPeers
	// confPending is the seqno of the last configuration change this
	// primary proposed (or of its election's entry); no other is proposed
	// until it is applied, as raft requires.
	confPending ids.Seqno
	// confLeaves are the seqnos of configuration changes whose leaves
	// checkConfLeaves has yet to compare with the durable entries.
	confLeaves []ids.Seqno

	// primaryTerm is primaryView, readable without orderMu (0: not
	// primary).
	primaryTerm atomic.Uint64
	forceSign   atomic.Bool
	// chunksCommitted is the seqno the ledger's chunks are committed to
	// (loop goroutine only).
	chunksCommitted ids.Seqno
	// applied is raft's commit index as applied to this node's state.
	applied atomic.Uint64

	serviceKey  *ecdsa.PrivateKey
	serviceCert *x509.Certificate
	nodeKey     *ecdsa.PrivateKey
	nodeCert    *x509.Certificate
	nodeID      ids.NodeID

	apps     *app.Registry
	builtins map[string]nodeEndpoint
	metrics  *metrics

	views viewHistory
	sigs  sigIndex

	// durable and committed are seqnos; committedCh is closed (and replaced)
	// whenever committed advances or the node fails.
	durable     atomic.Uint64
	committed   atomic.Uint64
	committedCh atomic.Pointer[chan struct{}]
	failure     atomic.Pointer[error]

	wake      chan struct{}
	stop      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once

	srv *httpServer
	// callerCerts caches forwarded callers' parsed certificates.
	callerCerts certCache

	// joinCtx stops a join waiting for trust (Options.Context).
	joinCtx context.Context

	// retireRefused counts the ticks a retired node could not be removed.
	retireRefused atomic.Uint64

	govOnce   sync.Once
	gov       *gov.Engine
	svcStatus atomic.Pointer[serviceStatus]
}

// Open opens the node described by cfg: it creates a new service when the
// ledger is empty, and otherwise rebuilds the state from the ledger. The node
// does not serve until Serve is called.
func Open(cfg *Config, opts Options) (*Node, error) {
	n := &Node{
		cfg:          cfg,
		log:          opts.Logger,
		fs:           opts.FS,
		rand:         opts.Rand,
		clock:        opts.Clock,
		store:        kv.NewStore(),
		tree:         merkle.New(),
		wake:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		loopDone:     make(chan struct{}),
		replicaReady: make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.joinCtx = opts.Context
	if n.joinCtx == nil {
		n.joinCtx = context.Background()
	}
	if n.fs == nil {
		n.fs = vfs.OS()
	}
	if n.rand == nil {
		n.rand = rand.Reader
	}
	if n.clock == nil {
		n.clock = systemClock{}
	}
	ch := make(chan struct{})
	n.committedCh.Store(&ch)
	n.metrics = newMetrics(n)
	n.builtins = n.buildNodeEndpoints()
	n.apps = app.NewRegistry(append(app.LoggingApp(), n.govEndpoints()...)...)

	var err error
	if n.platform, err = attest.New(cfg.Attest.Platform, n.platformOptions()...); err != nil {
		return nil, err
	}
	if n.verifier, err = attest.NewVerifier(); err != nil {
		return nil, err
	}
	if !n.platform.Secure() {
		n.log.Warn("attestation platform is virtual: sealed secrets are NOT confidential; for development and tests only", "platform", n.platform.Name())
	}
	if err := vfs.MkdirAllSync(n.fs, cfg.Storage.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	var rec *ledger.Recovery
	n.ledger, rec, err = ledger.Open(cfg.Storage.LedgerDir, ledger.Options{ChunkSize: cfg.Ledger.ChunkSize, FS: n.fs, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("node: open ledger: %w", err)
	}
	if rec.TruncatedFile != "" {
		n.log.Warn("truncated a torn or corrupt ledger tail (entries that were never reported committed)",
			"file", rec.TruncatedFile, "offset", rec.TruncatedAt, "bytes", rec.TruncatedBytes, "reason", rec.Reason)
	}
	if err := n.start(opts); err != nil {
		if n.tr != nil {
			n.tr.Close()
		}
		n.ledger.Close()
		return nil, err
	}
	n.srv = n.newHTTPServer()
	go n.loop()
	return n, nil
}

// startMode is how a node comes up.
type startMode int

const (
	modeRestart startMode = iota // sealed secrets exist: rejoin as itself
	modeGenesis                  // empty ledger, no secrets: start a new service
	modeJoin                     // no secrets, join.target set: join a service
)

func (n *Node) startMode() (startMode, error) {
	_, err := n.fs.Stat(n.dataPath(sealedServiceKey))
	switch {
	case err == nil:
		return modeRestart, nil
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("node: %w", err)
	case n.cfg.Join.Target != "":
		if n.ledger.LastSeqno() != 0 {
			return 0, fmt.Errorf("%w: the ledger in %s has entries but %s is missing; a joining node starts with an empty ledger",
				ErrMissingSecrets, n.cfg.Storage.LedgerDir, n.dataPath(sealedServiceKey))
		}
		return modeJoin, nil
	case n.ledger.LastSeqno() == 0:
		return modeGenesis, nil
	default:
		return 0, fmt.Errorf("%w (%s missing); recovery of a service from its ledger alone is not supported yet", ErrMissingSecrets, n.dataPath(sealedServiceKey))
	}
}

func (n *Node) start(opts Options) error {
	mode, err := n.startMode()
	if err != nil {
		return err
	}
	if n.storage, err = consensus.OpenStorage(n.fs, n.cfg.Storage.DataDir, n.ledger); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// The node-to-node listener is bound first: a joiner reports its
	// address in the join request.
	nodeLn, err := n.listenNodes(opts)
	if err != nil {
		return err
	}
	var peers []transport.Peer
	switch mode {
	case modeRestart:
		err = n.loadSecrets()
	case modeGenesis:
		err = n.createSecrets()
	case modeJoin:
		peers, err = n.join()
	}
	if err != nil {
		if nodeLn != nil {
			nodeLn.Close()
		}
		return err
	}
	n.raftID = transport.RaftID(n.nodeID)
	if mode == modeGenesis {
		if err := n.storage.Bootstrap(n.raftID); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	if err := n.replay(); err != nil {
		return err
	}
	if n.serviceCert == nil && mode != modeGenesis {
		if n.serviceCert, err = n.loadServiceCertFile(); err != nil {
			return err
		}
	}
	if n.nodeCert, err = n.endorseNode(); err != nil {
		return err
	}
	if mode != modeGenesis {
		if err := n.checkServiceIdentity(); err != nil {
			return err
		}
	}
	if err := n.startReplica(opts, nodeLn, peers); err != nil {
		return err
	}
	if mode == modeGenesis {
		if err := n.writeGenesis(); err != nil {
			return err
		}
		if err := vfs.WriteFileAtomic(n.fs, n.cfg.Service.CertFile, crypto.CertPEM(n.serviceCert), 0o644); err != nil {
			return fmt.Errorf("node: write service cert: %w", err)
		}
	}
	hs := n.storage.HardState()
	n.log.Info("node opened", "node_id", n.nodeID, "raft_id", raftIDString(n.raftID), "term", hs.Term,
		"last_seqno", n.ledger.LastSeqno(), "committed", n.committed.Load(), "mode", [...]string{"restart", "genesis", "join"}[mode])
	return nil
}

// Sealed secrets in the data directory. The service key is written last
// when a node is created or joins: its presence says the node has all
// three.
const (
	sealedServiceKey    = "service_key.sealed"
	sealedNodeKey       = "node_key.sealed"
	sealedLedgerSecrets = "ledger_secrets.sealed"
)

func (n *Node) dataPath(name string) string { return filepath.Join(n.cfg.Storage.DataDir, name) }

// loadSecrets unseals the service key, node key and ledger secret of a node
// that has run before.
func (n *Node) loadSecrets() error {
	load := func(name string) ([]byte, error) {
		blob, err := vfs.ReadFile(n.fs, n.dataPath(name))
		if err != nil {
			return nil, fmt.Errorf("node: read %s: %w", name, err)
		}
		plain, err := n.platform.Unseal(blob)
		if err != nil {
			return nil, fmt.Errorf("node: unseal %s: %w", name, err)
		}
		return plain, nil
	}
	serviceKey, err := load(sealedServiceKey)
	if err != nil {
		return err
	}
	nodeKey, err := load(sealedNodeKey)
	if err != nil {
		return err
	}
	secrets, err := load(sealedLedgerSecrets)
	if err != nil {
		return err
	}
	return n.setSecrets(serviceKey, nodeKey, secrets)
}

// setSecrets installs the three secrets, given as PEM keys and the
// encoded ledger secret history (crypto.LedgerSecrets).
func (n *Node) setSecrets(serviceKeyPEM, nodeKeyPEM, ledgerSecrets []byte) error {
	var err error
	if n.serviceKey, err = crypto.ParseKeyPEM(serviceKeyPEM); err != nil {
		return fmt.Errorf("node: service key: %w", err)
	}
	if n.nodeKey, err = crypto.ParseKeyPEM(nodeKeyPEM); err != nil {
		return fmt.Errorf("node: node key: %w", err)
	}
	id, err := crypto.PublicKeyID(n.nodeKey.Public())
	if err != nil {
		return err
	}
	n.nodeID = ids.NodeID(id)
	if n.secrets, err = crypto.DecodeLedgerSecrets(ledgerSecrets); err != nil {
		return fmt.Errorf("node: ledger secrets: %w", err)
	}
	return nil
}

// storeSecrets seals the three secrets into the data directory, the
// service key last.
func (n *Node) storeSecrets(serviceKeyPEM, nodeKeyPEM, ledgerSecrets []byte) error {
	for _, s := range []struct {
		name  string
		plain []byte
	}{{sealedNodeKey, nodeKeyPEM}, {sealedLedgerSecrets, ledgerSecrets}, {sealedServiceKey, serviceKeyPEM}} {
		sealed, err := n.platform.Seal(s.plain)
		if err != nil {
			return fmt.Errorf("node: seal %s: %w", s.name, err)
		}
		if err := vfs.WriteFileAtomic(n.fs, n.dataPath(s.name), sealed, 0o600); err != nil {
			return fmt.Errorf("node: write %s: %w", s.name, err)
		}
	}
	return nil
}

// createSecrets makes the secrets of a new service.
func (n *Node) createSecrets() error {
	serviceKey, err := n.newKeyPEM()
	if err != nil {
		return err
	}
	nodeKey, err := n.newKeyPEM()
	if err != nil {
		return err
	}
	secret, err := crypto.NewLedgerSecret(n.rand)
	if err != nil {
		return err
	}
	secrets := crypto.NewLedgerSecrets(secret).AppendBinary(nil)
	if err := n.storeSecrets(serviceKey, nodeKey, secrets); err != nil {
		return err
	}
	return n.setSecrets(serviceKey, nodeKey, secrets)
}

func (n *Node) newKeyPEM() ([]byte, error) {
	k, err := crypto.GenerateKey(n.rand)
	if err != nil {
		return nil, err
	}
	return crypto.KeyPEM(k)
}

// replay rebuilds the store, the Merkle tree, the view history and the
// signature index from the ledger entries raft has committed (the
// HardState's commit index): raft starts with them applied. Entries after
// it are adopted when this node becomes primary, or applied as they commit.
func (n *Node) replay() error {
	commit := n.storage.HardState().Commit
	if err := n.applyThrough(ids.Seqno(commit)); err != nil {
		return err
	}
	n.applied.Store(commit)
	n.durable.Store(uint64(n.ledger.DurableSeqno()))
	sig := n.sigs.lastAtOrBefore(ids.Seqno(commit))
	n.committed.Store(uint64(sig))
	n.store.Compact(ids.Seqno(commit))
	if err := n.ledger.SetCommitted(sig); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.chunksCommitted = sig
	if _, ok := n.store.Begin().Get(app.ServiceInfoTable, serviceInfoKey); ok {
		var err error
		if n.serviceCert, err = n.readServiceCert(); err != nil {
			return err
		}
	}
	return nil
}

// decodeWriteSet recovers the write set of a ledger entry (nil for a
// signature entry).
func (n *Node) decodeWriteSet(e *ledger.Entry) (*kv.WriteSet, error) {
	if e.Kind != ledger.KindTx {
		return nil, nil
	}
	pub, err := kv.DecodeWriteSet(e.Public)
	if err != nil {
		return nil, fmt.Errorf("node: seqno %d public write set: %w", e.Seqno, err)
	}
	if len(e.Private) == 0 {
		return pub, nil
	}
	plain, err := n.secrets.At(e.Seqno).Open(nil, e.View, e.Seqno, e.Private, e.AppendAAD(nil))
	if err != nil {
		return nil, fmt.Errorf("node: seqno %d: %w", e.Seqno, err)
	}
	priv, err := kv.DecodeWriteSet(plain)
	if err != nil {
		return nil, fmt.Errorf("node: seqno %d private write set: %w", e.Seqno, err)
	}
	return kv.Merge(pub, priv)
}

// Node statuses in the nodes table: governance moves a node between them.
const (
	nodePending = gov.NodePending
	nodeTrusted = gov.NodeTrusted
	nodeRetired = gov.NodeRetired
)

var serviceInfoKey = []byte(gov.ServiceInfoKey)

func (n *Node) readServiceCert() (*x509.Certificate, error) {
	raw, ok := n.store.Begin().Get(app.ServiceInfoTable, serviceInfoKey)
	if !ok {
		return nil, errors.New("node: ledger has no service info")
	}
	var info gov.ServiceInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("node: service info: %w", err)
	}
	return crypto.ParseCertPEM([]byte(info.Cert))
}

func (n *Node) checkServiceIdentity() error {
	if n.serviceCert == nil {
		var err error
		if n.serviceCert, err = n.readServiceCert(); err != nil {
			return err
		}
	}
	if !n.serviceKey.PublicKey.Equal(n.serviceCert.PublicKey) {
		return fmt.Errorf("%w: the sealed service key is not the key of the service certificate in the ledger", ErrServiceMismatch)
	}
	return nil
}

func (n *Node) endorseNode() (*x509.Certificate, error) {
	if n.serviceCert == nil {
		var err error
		n.serviceCert, err = crypto.SelfSign(n.rand, n.serviceKey, crypto.CertOptions{CommonName: "Coco service", IsCA: true})
		if err != nil {
			return nil, err
		}
	}
	host, _, _ := net.SplitHostPort(n.cfg.Network.RPCAddress)
	opts := crypto.CertOptions{CommonName: "Coco node " + string(n.nodeID[:16]), Server: true, Client: true,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		opts.IPs = append(opts.IPs, ip)
	} else if ip == nil && host != "" && host != "localhost" {
		opts.DNSNames = append(opts.DNSNames, host)
	}
	return crypto.Endorse(n.rand, n.nodeKey.Public(), n.serviceKey, n.serviceCert, opts)
}

// writeGenesis commits the first transaction of a new service: its
// identity (Opening), this node, the join allow-list, the constitution and
// the consortium's initial members (Accepted).
func (n *Node) writeGenesis() error {
	tx := n.store.Begin()
	put := func(table kv.MapName, key []byte, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		tx.Put(table, key, raw)
		return nil
	}
	if err := put(app.ServiceInfoTable, serviceInfoKey, gov.ServiceInfo{Cert: string(crypto.CertPEM(n.serviceCert)), Status: gov.ServiceOpening}); err != nil {
		return err
	}
	src, err := n.genesisConstitution()
	if err != nil {
		return err
	}
	if err := put(gov.ConstitutionTable, []byte(gov.ConstitutionKey), src); err != nil {
		return err
	}
	self, evidence, verifiedAt, err := n.selfMeasurement()
	if err != nil {
		return err
	}
	if err := put(app.NodesTable, []byte(n.nodeID), gov.NodeInfo{Cert: string(crypto.CertPEM(n.nodeCert)), RPCAddress: n.cfg.Network.RPCAddress,
		NodeAddress: n.nodeAddress, Status: nodeTrusted, Platform: self.Platform, Measurement: self.Measurement,
		Evidence: evidence, VerifiedAt: verifiedAt.UTC().Format(time.RFC3339)}); err != nil {
		return err
	}
	allowed := append([]measurementInfo{self}, n.cfg.Start.allowedMeasurements()...)
	for _, m := range allowed {
		if err := put(app.NodeMeasurementsTable, []byte(m.key()), m); err != nil {
			return err
		}
		// The platforms of the allowed measurements may join; virtual
		// evidence proves nothing, and is accepted only because the
		// genesis node itself runs on it or the configuration names it.
		if err := put(gov.JoinPolicyTable, []byte(m.Platform), gov.JoinPolicy{AllowInsecure: m.Platform == attest.PlatformVirtual}); err != nil {
			return err
		}
	}
	for _, ic := range n.cfg.Start.Members {
		raw, err := vfs.ReadFile(n.fs, ic.CertFile)
		if err != nil {
			return fmt.Errorf("node: genesis member: %w", err)
		}
		cert, err := crypto.ParseCertPEM(raw)
		if err != nil {
			return fmt.Errorf("node: genesis member %s: %w", ic.CertFile, err)
		}
		m := gov.Member{Cert: string(crypto.CertPEM(cert)), Status: gov.MemberAccepted}
		if f := ic.EncryptionKeyFile; f != "" {
			raw, err := vfs.ReadFile(n.fs, f)
			if err != nil {
				return fmt.Errorf("node: genesis member encryption key: %w", err)
			}
			if b, _ := pem.Decode(raw); b == nil || b.Type != "PUBLIC KEY" {
				return fmt.Errorf("node: genesis member encryption key %s: not a PEM PUBLIC KEY", f)
			} else if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
				return fmt.Errorf("node: genesis member encryption key %s: %w", f, err)
			}
			m.EncryptionKey = string(raw)
		}
		if err := put(app.MembersTable, []byte(ids.Fingerprint(cert.Raw)), m); err != nil {
			return err
		}
	}
	id, err := n.commitTx(tx, [32]byte{})
	if err != nil {
		return fmt.Errorf("node: genesis: %w", err)
	}
	return n.driveUntil(func() bool { return n.txStatus(id) == ids.StatusCommitted }, "the genesis transaction to commit")
}

// Serve answers HTTPS requests until Close. It returns nil after Close.
func (n *Node) Serve(ln net.Listener) error {
	return n.srv.serve(ln)
}

// Close stops serving, flushes and signs what was executed, and closes the
// ledger.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.srv.shutdown(ctx)
		cancel()
		close(n.stop)
		<-n.loopDone
		var saveErr error
		if n.failed() == nil {
			// A clean stop restarts with its whole committed state
			// rebuilt from the ledger, not just what the saved commit
			// index covered.
			saveErr = n.storage.SaveHardState()
		}
		err = errors.Join(saveErr, n.tr.Close(), n.ledger.Close())
		if failure := n.failed(); failure != nil {
			// Already reported when it happened; closing a failed ledger
			// only repeats it.
			n.log.Info("closed a failed node", "failure", failure, "close", err)
			err = nil
		}
	})
	return err
}

// NodeID returns this node's id.
func (n *Node) NodeID() ids.NodeID { return n.nodeID }

// NodeCert is the node's certificate, endorsed by the service.
func (n *Node) NodeCert() *x509.Certificate { return n.nodeCert }

// ServiceCert returns the service identity certificate.
func (n *Node) ServiceCert() *x509.Certificate { return n.serviceCert }

// IsPrimary reports whether this node is the primary: it executes writes.
func (n *Node) IsPrimary() bool { return n.isPrimary() }

// CommittedSeqno returns the seqno of the last committed signature.
func (n *Node) CommittedSeqno() ids.Seqno { return ids.Seqno(n.committed.Load()) }

// Voters returns how many voting members this node's raft configuration
// has.
func (n *Node) Voters() int { return len(n.replica.Membership().Voters) }

// Err returns the failure that stopped this node's writes (it wraps
// ErrFailed), or nil.
func (n *Node) Err() error { return n.failed() }

// View returns the node's current view: raft's current term.
func (n *Node) View() ids.View { return ids.View(n.replica.Status().Term) }

// genesisConstitution reads start.constitution_file (the default
// constitution if none) and checks that it compiles: a service whose
// constitution does not could never be governed.
func (n *Node) genesisConstitution() (string, error) {
	src := constitution.DefaultSource()
	if f := n.cfg.Start.ConstitutionFile; f != "" {
		raw, err := vfs.ReadFile(n.fs, f)
		if err != nil {
			return "", fmt.Errorf("node: constitution: %w", err)
		}
		src = string(raw)
	}
	if _, err := constitution.Compile(src, constitution.Limits{}); err != nil {
		return "", fmt.Errorf("node: constitution %s: %w", n.cfg.Start.ConstitutionFile, err)
	}
	return src, nil
}

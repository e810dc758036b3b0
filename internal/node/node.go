package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/merkle"
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
	FS       vfs.FS
	Rand     io.Reader
	Clock    Clock
	Logger   *slog.Logger
	Listener net.Listener
}

// Node is one running Coco node.
type Node struct {
	cfg      *Config
	log      *slog.Logger
	fs       vfs.FS
	rand     io.Reader
	clock    Clock
	platform attest.Platform

	store  *kv.Store
	ledger *ledger.Ledger
	tree   *merkle.Tree
	secret *crypto.LedgerSecret
	view   ids.View

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

	wake        chan struct{}
	stop        chan struct{}
	flusherDone chan struct{}
	closeOnce   sync.Once

	srv *httpServer
}

// Open opens the node described by cfg: it creates a new service when the
// ledger is empty, and otherwise rebuilds the state from the ledger. The node
// does not serve until Serve is called.
func Open(cfg *Config, opts Options) (*Node, error) {
	n := &Node{
		cfg:         cfg,
		log:         opts.Logger,
		fs:          opts.FS,
		rand:        opts.Rand,
		clock:       opts.Clock,
		store:       kv.NewStore(),
		tree:        merkle.New(),
		apps:        app.NewRegistry(app.LoggingApp()...),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		flusherDone: make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.Default()
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

	var err error
	if n.platform, err = attest.New(cfg.Attest.Platform); err != nil {
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
	if err := n.start(); err != nil {
		n.ledger.Close()
		return nil, err
	}
	n.srv = n.newHTTPServer()
	go n.flushLoop()
	return n, nil
}

func (n *Node) start() error {
	genesis := n.ledger.LastSeqno() == 0
	if err := n.loadSecrets(genesis); err != nil {
		return err
	}
	if err := n.replay(); err != nil {
		return err
	}
	if err := n.advanceView(); err != nil {
		return err
	}
	var err error
	if n.nodeCert, err = n.endorseNode(); err != nil {
		return err
	}
	if genesis {
		if err := n.writeGenesis(); err != nil {
			return err
		}
	} else if err := n.checkServiceIdentity(); err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(n.fs, n.cfg.Service.CertFile, crypto.CertPEM(n.serviceCert), 0o644); err != nil {
		return fmt.Errorf("node: write service cert: %w", err)
	}
	n.log.Info("node opened", "node_id", n.nodeID, "view", n.view, "last_seqno", n.store.Seqno(),
		"committed", n.committed.Load(), "genesis", genesis)
	return nil
}

// Sealed secrets in the data directory.
const (
	sealedServiceKey   = "service_key.sealed"
	sealedNodeKey      = "node_key.sealed"
	sealedLedgerSecret = "ledger_secret.sealed"
	viewFile           = "view"
)

func (n *Node) dataPath(name string) string { return filepath.Join(n.cfg.Storage.DataDir, name) }

// loadSecrets unseals the service key, node key and ledger secret, creating
// them for a new service.
func (n *Node) loadSecrets(genesis bool) error {
	load := func(name string, create func() ([]byte, error)) ([]byte, error) {
		blob, err := vfs.ReadFile(n.fs, n.dataPath(name))
		if err == nil {
			return n.platform.Unseal(blob)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("node: read %s: %w", name, err)
		}
		if !genesis {
			return nil, fmt.Errorf("%w (%s missing); recovery of a service from its ledger alone is not supported yet", ErrMissingSecrets, n.dataPath(name))
		}
		plain, err := create()
		if err != nil {
			return nil, err
		}
		sealed, err := n.platform.Seal(plain)
		if err != nil {
			return nil, fmt.Errorf("node: seal %s: %w", name, err)
		}
		if err := vfs.WriteFileAtomic(n.fs, n.dataPath(name), sealed, 0o600); err != nil {
			return nil, fmt.Errorf("node: write %s: %w", name, err)
		}
		return plain, nil
	}
	newKeyPEM := func() ([]byte, error) {
		k, err := crypto.GenerateKey(n.rand)
		if err != nil {
			return nil, err
		}
		return crypto.KeyPEM(k)
	}
	raw, err := load(sealedServiceKey, newKeyPEM)
	if err != nil {
		return err
	}
	if n.serviceKey, err = crypto.ParseKeyPEM(raw); err != nil {
		return fmt.Errorf("node: service key: %w", err)
	}
	if raw, err = load(sealedNodeKey, newKeyPEM); err != nil {
		return err
	}
	if n.nodeKey, err = crypto.ParseKeyPEM(raw); err != nil {
		return fmt.Errorf("node: node key: %w", err)
	}
	id, err := crypto.PublicKeyID(n.nodeKey.Public())
	if err != nil {
		return err
	}
	n.nodeID = ids.NodeID(id)
	if raw, err = load(sealedLedgerSecret, func() ([]byte, error) {
		s, err := crypto.NewLedgerSecret(n.rand)
		if err != nil {
			return nil, err
		}
		return s.Bytes(), nil
	}); err != nil {
		return err
	}
	if n.secret, err = crypto.LedgerSecretFromBytes(raw); err != nil {
		return fmt.Errorf("node: ledger secret: %w", err)
	}
	return nil
}

// advanceView starts a new view above every view this node has used or seen
// and makes it durable before anything is written in it.
func (n *Node) advanceView() error {
	prev := n.views.last()
	raw, err := vfs.ReadFile(n.fs, n.dataPath(viewFile))
	switch {
	case err == nil:
		v, perr := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if perr != nil {
			return fmt.Errorf("node: %s is corrupt: %q", n.dataPath(viewFile), raw)
		}
		prev = max(prev, ids.View(v))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("node: read view: %w", err)
	}
	n.view = prev + 1
	if err := vfs.WriteFileAtomic(n.fs, n.dataPath(viewFile), []byte(strconv.FormatUint(uint64(n.view), 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("node: persist view: %w", err)
	}
	return nil
}

// replay rebuilds the store, the Merkle tree, the view history and the
// signature index from the durable ledger.
func (n *Node) replay() error {
	var lastSig ids.Seqno
	err := n.ledger.Scan(1, func(e *ledger.Entry) error {
		ws, err := n.decodeWriteSet(e)
		if err != nil {
			return err
		}
		if e.Kind == ledger.KindSignature {
			rec, err := ledger.UnmarshalSignatureRecord(e.Public)
			if err != nil {
				return fmt.Errorf("node: replay signature at seqno %d: %w", e.Seqno, err)
			}
			n.sigs.add(e.Seqno, rec.TreeSize, rec.SignedRoot)
			lastSig = e.Seqno
		}
		if err := n.store.Apply(e.Seqno, ws); err != nil {
			return fmt.Errorf("node: replay seqno %d: %w", e.Seqno, err)
		}
		n.views.note(e.View, e.Seqno)
		leaf := e.Leaf()
		n.tree.Append(merkle.LeafHash(leaf[:]))
		return nil
	})
	if err != nil {
		return err
	}
	n.durable.Store(uint64(n.ledger.DurableSeqno()))
	n.committed.Store(uint64(lastSig))
	n.store.Compact(lastSig)
	if err := n.ledger.SetCommitted(lastSig); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if lastSig > 0 {
		n.serviceCert, err = n.readServiceCert()
		if err != nil {
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
	plain, err := n.secret.Open(nil, e.View, e.Seqno, e.Private, e.AppendAAD(nil))
	if err != nil {
		return nil, fmt.Errorf("node: seqno %d: %w", e.Seqno, err)
	}
	priv, err := kv.DecodeWriteSet(plain)
	if err != nil {
		return nil, fmt.Errorf("node: seqno %d private write set: %w", e.Seqno, err)
	}
	return kv.Merge(pub, priv)
}

// serviceInfo is the value of the service_info table's single key.
type serviceInfo struct {
	Cert   string `json:"cert"`
	Status string `json:"status"`
}

// identityInfo is the value of a users or members table entry.
type identityInfo struct {
	Cert string `json:"cert"`
}

// nodeInfo is the value of a nodes table entry.
type nodeInfo struct {
	Cert       string `json:"cert"`
	RPCAddress string `json:"rpc_address"`
	Status     string `json:"status"`
}

var serviceInfoKey = []byte("service")

func (n *Node) readServiceCert() (*x509.Certificate, error) {
	raw, ok := n.store.Begin().Get(app.ServiceInfoTable, serviceInfoKey)
	if !ok {
		return nil, errors.New("node: ledger has no service info")
	}
	var info serviceInfo
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

// writeGenesis commits the first transaction of a new service: its identity,
// this node, and the consortium's initial members and users.
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
	if err := put(app.ServiceInfoTable, serviceInfoKey, serviceInfo{Cert: string(crypto.CertPEM(n.serviceCert)), Status: "Open"}); err != nil {
		return err
	}
	if err := put(app.NodesTable, []byte(n.nodeID), nodeInfo{Cert: string(crypto.CertPEM(n.nodeCert)), RPCAddress: n.cfg.Network.RPCAddress, Status: "Trusted"}); err != nil {
		return err
	}
	for _, set := range []struct {
		table kv.MapName
		ids   []IdentityConfig
	}{{app.MembersTable, n.cfg.Start.Members}, {app.UsersTable, n.cfg.Start.Users}} {
		for _, ic := range set.ids {
			raw, err := vfs.ReadFile(n.fs, ic.CertFile)
			if err != nil {
				return fmt.Errorf("node: genesis identity: %w", err)
			}
			cert, err := crypto.ParseCertPEM(raw)
			if err != nil {
				return fmt.Errorf("node: genesis identity %s: %w", ic.CertFile, err)
			}
			if err := put(set.table, []byte(ids.Fingerprint(cert.Raw)), identityInfo{Cert: string(crypto.CertPEM(cert))}); err != nil {
				return err
			}
		}
	}
	if _, err := n.commitTx(tx, [32]byte{}); err != nil {
		return fmt.Errorf("node: genesis: %w", err)
	}
	return n.flushOnce(true)
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
		<-n.flusherDone
		err = n.ledger.Close()
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

// ServiceCert returns the service identity certificate.
func (n *Node) ServiceCert() *x509.Certificate { return n.serviceCert }

// View returns the node's current view.
func (n *Node) View() ids.View { return n.view }

package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/cocoledger/coco/internal/attest"
)

// ErrConfig reports an invalid node configuration.
var ErrConfig = errors.New("node: invalid configuration")

// Config is a node's TOML configuration (node.toml). Relative paths are
// resolved against the directory of the file.
type Config struct {
	// Name is a human label for logs and sandbox.json.
	Name    string        `toml:"name"`
	Network NetworkConfig `toml:"network"`
	Storage StorageConfig `toml:"storage"`
	Service ServiceConfig `toml:"service"`
	Start   StartConfig   `toml:"start"`
	Join    JoinConfig    `toml:"join"`
	// Consensus tunes raft.
	Consensus ConsensusConfig `toml:"consensus"`
	Ledger    LedgerConfig    `toml:"ledger"`
	HTTP      HTTPConfig      `toml:"http"`
	Attest    AttestConfig    `toml:"attestation"`
	Log       LogConfig       `toml:"log"`
	Runtime   RuntimeConfig   `toml:"runtime"`
}

// RuntimeConfig tunes the Go runtime of the node process.
type RuntimeConfig struct {
	// GCPercent is the garbage collector's target (GOGC). The write path
	// allocates a few KiB per transaction; a higher target trades memory
	// for CPU. The GOGC environment variable, when set, wins.
	GCPercent int `toml:"gc_percent"`
	// MemoryLimitMB is a soft limit (GOMEMLIMIT) that makes the collector
	// work harder as the heap approaches it; 0 means none. The GOMEMLIMIT
	// environment variable, when set, wins.
	MemoryLimitMB int64 `toml:"memory_limit_mb"`
}

// NetworkConfig says where the node listens.
type NetworkConfig struct {
	// RPCAddress is host:port of the HTTPS endpoint for clients.
	RPCAddress string `toml:"rpc_address"`
	// NodeAddress is host:port of the node-to-node channel (raft and
	// forwarded writes, mutual TLS). Port 0 picks a free port, which only
	// suits a node that no other node needs to reach after a restart.
	NodeAddress string `toml:"node_address"`
}

// JoinConfig makes a node with an empty ledger join an existing service
// instead of starting a new one.
type JoinConfig struct {
	// Target is the rpc_address of any node of the service. The service
	// certificate (service.cert_file) must be present: the node trusts
	// the service only through it.
	Target string `toml:"target"`
	// TimeoutMS bounds how long the node retries while the service has
	// no primary.
	TimeoutMS int64 `toml:"timeout_ms"`
}

// ConsensusConfig tunes raft's timing.
type ConsensusConfig struct {
	// TickMS is raft's tick: heartbeats go out every tick.
	TickMS int64 `toml:"tick_ms"`
	// ElectionTicks is the election timeout in ticks (raft randomises it
	// between it and twice it).
	ElectionTicks int `toml:"election_ticks"`
}

// StorageConfig says where the node keeps its state.
type StorageConfig struct {
	LedgerDir string `toml:"ledger_dir"`
	// DataDir holds sealed secrets and the durable view.
	DataDir string `toml:"data_dir"`
}

// ServiceConfig names the service identity certificate.
type ServiceConfig struct {
	// CertFile is written when the node starts a new service and must match
	// the ledger's service identity on restart.
	CertFile string `toml:"cert_file"`
}

// StartConfig is the genesis configuration, used only when the ledger is
// empty.
type StartConfig struct {
	// Members are the consortium's initial members. They start Accepted
	// and become Active by acknowledging (coco gov ack); users, the
	// opening of the service and everything else come by proposal.
	Members []IdentityConfig `toml:"members"`
	// ConstitutionFile is the constitution's JS module; empty: the
	// default one (a strict majority of active members).
	ConstitutionFile string `toml:"constitution_file"`
	// NodeMeasurements are further measurements a joining node may have,
	// besides the genesis node's own, as "<platform>:<hex>".
	NodeMeasurements []string `toml:"node_measurements"`
}

func (s StartConfig) allowedMeasurements() []measurementInfo {
	out := make([]measurementInfo, 0, len(s.NodeMeasurements))
	for _, m := range s.NodeMeasurements {
		platform, hex, _ := strings.Cut(m, ":")
		out = append(out, measurementInfo{Platform: platform, Measurement: strings.ToLower(hex)})
	}
	return out
}

// IdentityConfig names a member's certificate and, optionally, its
// encryption public key (PEM, PKIX), to which recovery shares are sealed.
type IdentityConfig struct {
	CertFile          string `toml:"cert_file"`
	EncryptionKeyFile string `toml:"encryption_key_file"`
}

// LedgerConfig tunes the ledger and signatures.
type LedgerConfig struct {
	// ChunkSize in bytes: a chunk is closed at the first signature after it.
	ChunkSize int64 `toml:"chunk_size"`
	// SignatureIntervalMS: sign at most this long after the first unsigned
	// entry. 0 signs every batch (every group commit).
	SignatureIntervalMS int64 `toml:"signature_interval_ms"`
	// SignatureIntervalTxs: sign after this many unsigned entries at most.
	SignatureIntervalTxs int64 `toml:"signature_interval_txs"`
}

// HTTPConfig bounds requests.
type HTTPConfig struct {
	MaxBodyBytes        int64 `toml:"max_body_bytes"`
	CommitWaitTimeoutMS int64 `toml:"commit_wait_timeout_ms"`
	MaxConflictRetries  int   `toml:"max_conflict_retries"`
}

// AttestConfig names the attestation platform.
type AttestConfig struct {
	Platform string `toml:"platform"`
	// VirtualCodeID replaces the virtual platform's measurement (by
	// default the SHA-256 of the executable): 64 hex digits.
	VirtualCodeID string `toml:"virtual_code_id"`
	// TDXCollateralDir holds the Intel PCS collateral a tdx node attaches
	// to its quote, so that other nodes verify it offline: tcb_info.json,
	// qe_identity.json, pck_crl.der, root_crl.der, tcb_signing_chain.pem
	// (docs/attestation.md §2.3). Required on tdx; operators refresh it
	// before its nextUpdate.
	TDXCollateralDir string `toml:"tdx_collateral_dir"`
}

// LogConfig sets logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is json or text.
	Format string `toml:"format"`
}

// Defaults.
const (
	DefaultChunkSize            = 4 << 20
	DefaultSignatureIntervalTxs = 5000
	DefaultMaxBodyBytes         = 1 << 20
	DefaultCommitWaitTimeout    = 30 * time.Second
	DefaultMaxConflictRetries   = 10
	DefaultGCPercent            = 400
	DefaultTickMS               = 50
	DefaultElectionTicks        = 20
	DefaultJoinTimeout          = 60 * time.Second
)

// LoadConfig reads and validates a node.toml. Unknown keys are refused with
// their names.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(raw, filepath.Dir(path))
}

// ParseConfig parses TOML text; baseDir resolves relative paths.
func ParseConfig(raw []byte, baseDir string) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			keys := make([]string, 0, len(strict.Errors))
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return nil, fmt.Errorf("%w: unknown key(s) %s", ErrConfig, strings.Join(keys, ", "))
		}
		var decErr *toml.DecodeError
		if errors.As(err, &decErr) {
			row, col := decErr.Position()
			return nil, fmt.Errorf("%w: line %d column %d: %v", ErrConfig, row, col, decErr)
		}
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.applyDefaults()
	c.resolve(baseDir)
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	orDefault(&c.Name, "node")
	orDefault(&c.Ledger.ChunkSize, DefaultChunkSize)
	orDefault(&c.Ledger.SignatureIntervalTxs, DefaultSignatureIntervalTxs)
	orDefault(&c.HTTP.MaxBodyBytes, DefaultMaxBodyBytes)
	orDefault(&c.HTTP.CommitWaitTimeoutMS, DefaultCommitWaitTimeout.Milliseconds())
	orDefault(&c.HTTP.MaxConflictRetries, DefaultMaxConflictRetries)
	orDefault(&c.Attest.Platform, "virtual")
	orDefault(&c.Log.Level, "info")
	orDefault(&c.Log.Format, "json")
	orDefault(&c.Runtime.GCPercent, DefaultGCPercent)
	orDefault(&c.Network.NodeAddress, "127.0.0.1:0")
	orDefault(&c.Consensus.TickMS, DefaultTickMS)
	orDefault(&c.Consensus.ElectionTicks, DefaultElectionTicks)
	orDefault(&c.Join.TimeoutMS, DefaultJoinTimeout.Milliseconds())
}

// orDefault sets *p to def when the configuration left it unset (zero).
func orDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.Storage.LedgerDir)
	abs(&c.Storage.DataDir)
	abs(&c.Service.CertFile)
	if c.Attest.TDXCollateralDir != "" {
		abs(&c.Attest.TDXCollateralDir)
	}
	for i := range c.Start.Members {
		abs(&c.Start.Members[i].CertFile)
		if c.Start.Members[i].EncryptionKeyFile != "" {
			abs(&c.Start.Members[i].EncryptionKeyFile)
		}
	}
	if c.Start.ConstitutionFile != "" {
		abs(&c.Start.ConstitutionFile)
	}
}

func (c *Config) validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if _, port, err := net.SplitHostPort(c.Network.RPCAddress); err != nil || port == "" {
		bad("network.rpc_address %q must be host:port", c.Network.RPCAddress)
	}
	if c.Storage.LedgerDir == "" {
		bad("storage.ledger_dir is required")
	}
	if c.Storage.DataDir == "" {
		bad("storage.data_dir is required")
	}
	if c.Service.CertFile == "" {
		bad("service.cert_file is required")
	}
	if _, port, err := net.SplitHostPort(c.Network.NodeAddress); err != nil || port == "" {
		bad("network.node_address %q must be host:port", c.Network.NodeAddress)
	}
	if c.Join.Target != "" {
		if _, port, err := net.SplitHostPort(c.Join.Target); err != nil || port == "" || port == "0" {
			bad("join.target %q must be the host:port of a node of the service", c.Join.Target)
		}
		if len(c.Start.Members) > 0 || c.Start.ConstitutionFile != "" || len(c.Start.NodeMeasurements) > 0 {
			bad("a joining node takes the service's members, constitution and measurements from the service: remove [start] or [join]")
		}
	} else if len(c.Start.Members) == 0 {
		bad("start.members must name at least one member certificate (or set join.target to join a service)")
	}
	for _, m := range c.Start.NodeMeasurements {
		platform, hex, ok := strings.Cut(m, ":")
		if _, err := attest.ParseMeasurement(hex); !ok || platform == "" || err != nil {
			bad("start.node_measurements entry %q must be <platform>:<hex measurement>", m)
		}
	}
	if c.Join.TimeoutMS < 1 {
		bad("join.timeout_ms must be positive")
	}
	if c.Consensus.TickMS < 1 || c.Consensus.TickMS > 10_000 {
		bad("consensus.tick_ms %d must be between 1 and 10000", c.Consensus.TickMS)
	}
	if c.Consensus.ElectionTicks < 3 || c.Consensus.ElectionTicks > 1000 {
		bad("consensus.election_ticks %d must be between 3 and 1000 (heartbeats go out every tick)", c.Consensus.ElectionTicks)
	}
	if (c.Attest.Platform == attest.PlatformTDX) != (c.Attest.TDXCollateralDir != "") {
		bad("attestation.tdx_collateral_dir is required with platform tdx, and only with it")
	}
	if c.Attest.VirtualCodeID != "" {
		if _, err := attest.ParseMeasurement(c.Attest.VirtualCodeID); err != nil || len(c.Attest.VirtualCodeID) != 64 {
			bad("attestation.virtual_code_id must be 64 hex digits")
		}
	}
	for i, m := range c.Start.Members {
		if m.CertFile == "" {
			bad("start identity %d has no cert_file", i)
		}
	}
	if c.Ledger.ChunkSize < 1024 {
		bad("ledger.chunk_size %d is below the minimum of 1024 bytes", c.Ledger.ChunkSize)
	}
	if c.Ledger.SignatureIntervalMS < 0 || c.Ledger.SignatureIntervalMS > 60_000 {
		bad("ledger.signature_interval_ms %d must be between 0 (every batch) and 60000", c.Ledger.SignatureIntervalMS)
	}
	if c.Ledger.SignatureIntervalTxs < 1 {
		bad("ledger.signature_interval_txs %d must be at least 1", c.Ledger.SignatureIntervalTxs)
	}
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 64<<20 {
		bad("http.max_body_bytes %d must be between 1024 and 67108864", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.CommitWaitTimeoutMS < 1 {
		bad("http.commit_wait_timeout_ms must be positive")
	}
	if c.HTTP.MaxConflictRetries < 1 || c.HTTP.MaxConflictRetries > 1000 {
		bad("http.max_conflict_retries %d must be between 1 and 1000", c.HTTP.MaxConflictRetries)
	}
	if c.Runtime.GCPercent < 25 || c.Runtime.GCPercent > 10_000 {
		bad("runtime.gc_percent %d must be between 25 and 10000", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimitMB < 0 {
		bad("runtime.memory_limit_mb %d must not be negative", c.Runtime.MemoryLimitMB)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format %q must be json or text", c.Log.Format)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

// Marshal renders the configuration as TOML (the sandbox writes node.toml
// files with it).
func (c *Config) Marshal() ([]byte, error) { return toml.Marshal(c) }

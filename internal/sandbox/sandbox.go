package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cocoledger/coco/internal/node"
)

// ManifestFile is the name of the sandbox's description in the workspace.
const ManifestFile = "sandbox.json"

// Manifest is sandbox.json.
type Manifest struct {
	ServiceCert string      `json:"service_cert"`
	Nodes       []NodeEntry `json:"nodes"`
}

// NodeEntry describes one node of the sandbox.
type NodeEntry struct {
	Name        string `json:"name"`
	RPCAddress  string `json:"rpc_address"`
	NodeAddress string `json:"node_address"`
	LedgerDir   string `json:"ledger_dir"`
	Config      string `json:"config"`
	// PID is the node's process id while the sandbox runs (to stop one node
	// by hand).
	PID int `json:"pid,omitempty"`
}

// Options configure Run.
type Options struct {
	Workspace string
	Nodes     int
	// BasePort is the first node's port; 0 lets the system choose.
	BasePort int
	// Binary is the coco executable to start nodes with (default: this one).
	Binary string
	// Out receives the ready line and instructions.
	Out io.Writer
	// ReadyTimeout bounds how long nodes may take to serve.
	ReadyTimeout time.Duration
	// ChunkSize is ledger.chunk_size in new node configurations (0: the
	// node's default).
	ChunkSize int64
}

// ErrNodes reports an unsupported node count.
var ErrNodes = errors.New("sandbox: unsupported node count")

// Run creates (or reopens) the workspace, starts the nodes, writes
// sandbox.json and prints how to use the service, then waits for ctx.
func Run(ctx context.Context, opts Options) error {
	if opts.Nodes != 1 && opts.Nodes != 3 && opts.Nodes != 5 {
		return fmt.Errorf("%w %d: a sandbox has 1, 3 or 5 nodes (an odd number: raft tolerates the crash of a minority)", ErrNodes, opts.Nodes)
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		opts.Binary = exe
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	ws, err := filepath.Abs(opts.Workspace)
	if err != nil {
		return err
	}
	nodes, err := prepare(ws, opts)
	if err != nil {
		return err
	}
	var children []*child
	defer func() {
		for _, c := range children {
			c.stop(10 * time.Second)
		}
	}()
	// One at a time: node0 starts the service (on the first run) and each
	// other node then joins it through node0; on later runs every node
	// rejoins as itself, and none waits for an election to be ready.
	exited := make(chan *child, len(nodes))
	serviceCert := filepath.Join(ws, "service_cert.pem")
	say := func(format string, args ...any) {
		if opts.Out != nil {
			fmt.Fprintf(opts.Out, format+"\n", args...)
		}
	}
	var members *consortium
	defer func() {
		if members != nil {
			members.close()
		}
	}()
	for i := range nodes {
		// A new node waits Pending until the members trust it: they do,
		// while it waits.
		var poll func() error
		if members != nil {
			poll = func() error { return members.trustPending(ctx, say) }
		}
		var c *child
		var addr string
		for attempt := 1; ; attempt++ {
			fresh := isFresh(nodes[i])
			if c, err = startChild(opts.Binary, nodes[i], exited); err != nil {
				return err
			}
			children = append(children, c)
			addr, err = waitReady(ctx, c, serviceCert, opts.ReadyTimeout, exited, poll)
			// A free port picked for a new node can be taken by another
			// process before the node binds it: pick others.
			if err != nil && fresh && opts.BasePort == 0 && attempt < 3 && strings.Contains(err.Error(), "address already in use") {
				say("%s: a port it was given is taken; trying other ports", nodes[i].Name)
				if err = repickPorts(nodes, i, opts.ChunkSize); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		nodes[i].RPCAddress = addr
		nodes[i].PID = c.cmd.Process.Pid
		if i == 0 {
			if members, err = newConsortium(ws, addr); err != nil {
				return err
			}
			if err := members.open(ctx, say); err != nil {
				return err
			}
		}
	}
	m := Manifest{ServiceCert: serviceCert, Nodes: nodes}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ws, ManifestFile), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	printReady(opts.Out, ws, m)
	// A node that stops (an operator's kill, a crash) leaves the others
	// running: the service survives a minority, and the node can be
	// started again by hand from its config.
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(opts.Out, "stopping the sandbox")
			return nil
		case c := <-exited:
			fmt.Fprintf(opts.Out, "node %s exited (%v); the others keep running. Start it again with: %s node start --config %s (log: %s)\n",
				c.name, c.err, opts.Binary, c.config, c.logPath)
		}
	}
}

// prepare creates identities and node configurations that do not exist yet.
func prepare(ws string, opts Options) ([]NodeEntry, error) {
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{memberName(0), memberName(1), memberName(2), "user0"} {
		if _, err := os.Stat(filepath.Join(ws, name+"_cert.pem")); errors.Is(err, os.ErrNotExist) {
			if _, _, err := Keygen(ws, name); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(filepath.Join(ws, name+"_enc_pubk.pem")); name != "user0" && errors.Is(err, os.ErrNotExist) {
			if _, _, err := KeygenEncryption(ws, name); err != nil {
				return nil, err
			}
		}
	}
	var nodes []NodeEntry
	var genesisRPC string
	for i := range opts.Nodes {
		name := fmt.Sprintf("node%d", i)
		dir := filepath.Join(ws, name)
		cfgPath := filepath.Join(dir, "node.toml")
		if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
			rpc, nodeAddr, err := nodePorts(opts.BasePort, i)
			if err != nil {
				return nil, err
			}
			if err := writeNodeConfig(dir, name, rpc, nodeAddr, genesisRPC, opts.ChunkSize); err != nil {
				return nil, err
			}
		}
		cfg, err := node.LoadConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			genesisRPC = cfg.Network.RPCAddress
		}
		nodes = append(nodes, NodeEntry{Name: name, RPCAddress: cfg.Network.RPCAddress, NodeAddress: cfg.Network.NodeAddress,
			LedgerDir: cfg.Storage.LedgerDir, Config: cfgPath})
	}
	return nodes, nil
}

// isFresh reports whether a node has never started: it has no data yet.
func isFresh(nd NodeEntry) bool {
	cfg, err := node.LoadConfig(nd.Config)
	if err != nil {
		return false
	}
	entries, err := os.ReadDir(cfg.Storage.DataDir)
	return errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0)
}

// repickPorts gives node i, whose first start failed, new free ports and
// a clean slate (what the failed start wrote is removed), and points the
// nodes that have not joined yet at node0's new address.
func repickPorts(nodes []NodeEntry, i int, chunkSize int64) error {
	rpc, nodeAddr, err := nodePorts(0, i)
	if err != nil {
		return err
	}
	nodes[i].RPCAddress, nodes[i].NodeAddress = rpc, nodeAddr
	dir := filepath.Dir(nodes[i].Config)
	for _, sub := range []string{"data", "ledger"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	rewrite := func(j int) error {
		join := ""
		if j > 0 {
			join = nodes[0].RPCAddress
		}
		return writeNodeConfig(filepath.Dir(nodes[j].Config), nodes[j].Name, nodes[j].RPCAddress, nodes[j].NodeAddress, join, chunkSize)
	}
	if err := rewrite(i); err != nil {
		return err
	}
	for j := 1; i == 0 && j < len(nodes); j++ {
		if isFresh(nodes[j]) {
			if err := rewrite(j); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodePorts picks node i's RPC and node-to-node addresses: fixed ones from
// basePort (RPC basePort+i, node-to-node basePort+100+i), else free ports
// the system assigns now. They are written into the node's configuration,
// so a node that restarts keeps them and its peers still reach it.
func nodePorts(basePort, i int) (rpc, nodeAddr string, err error) {
	if basePort != 0 {
		return fmt.Sprintf("127.0.0.1:%d", basePort+i), fmt.Sprintf("127.0.0.1:%d", basePort+100+i), nil
	}
	free := func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return ln.Addr().String(), nil
	}
	if rpc, err = free(); err != nil {
		return "", "", err
	}
	nodeAddr, err = free()
	return rpc, nodeAddr, err
}

// writeNodeConfig writes node.toml: node0 starts the service (members,
// users), every other node joins it through joinTarget, node0's RPC
// address.
func writeNodeConfig(dir, name, rpc, nodeAddr, joinTarget string, chunkSize int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	role := `# The consortium's first members; they open the service and add users
# by proposal, as "coco sandbox" did (coco gov ...).
[start]
members = [
  { cert_file = "../member0_cert.pem", encryption_key_file = "../member0_enc_pubk.pem" },
  { cert_file = "../member1_cert.pem", encryption_key_file = "../member1_enc_pubk.pem" },
  { cert_file = "../member2_cert.pem", encryption_key_file = "../member2_enc_pubk.pem" },
]`
	if joinTarget != "" {
		role = fmt.Sprintf(`# This node joins the service through node0 the first time it starts;
# afterwards it rejoins as itself (its identity is sealed in data/).
[join]
target = %q`, joinTarget)
	}
	chunkLine := ""
	if chunkSize != 0 {
		chunkLine = fmt.Sprintf("chunk_size = %d", chunkSize)
	}
	cfg := fmt.Sprintf(`# Coco node configuration, written by "coco sandbox".
# Restart this node by hand with: coco node start --config %s
name = %q

[network]
rpc_address = %q
node_address = %q

[storage]
ledger_dir = "ledger"
data_dir = "data"

[service]
cert_file = "../service_cert.pem"

%s

[ledger]
signature_interval_ms = 0
%s

[log]
level = "info"
`, filepath.Join(dir, "node.toml"), name, rpc, nodeAddr, role, chunkLine)
	return os.WriteFile(filepath.Join(dir, "node.toml"), []byte(cfg), 0o644)
}

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	config  string
	dataDir string
	done    chan struct{}
	err     error
}

func startChild(binary string, nd NodeEntry, exited chan<- *child) (*child, error) {
	cfg, err := node.LoadConfig(nd.Config)
	if err != nil {
		return nil, err
	}
	// A stale address from a previous run must not be mistaken for this one.
	if err := os.Remove(filepath.Join(cfg.Storage.DataDir, node.RPCAddressFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	logPath := filepath.Join(filepath.Dir(nd.Config), "node.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "node", "start", "--config", nd.Config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C in the terminal reaches the sandbox, which
	// then stops the nodes in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("sandbox: start %s: %w", nd.Name, err)
	}
	c := &child{name: nd.Name, cmd: cmd, logPath: logPath, config: nd.Config, dataDir: cfg.Storage.DataDir, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
		exited <- c
	}()
	return c, nil
}

func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// waitReady waits until the node has written its bound address and answers
// /node/ready over TLS pinned to the service certificate.
// poll, if set, runs about every half second meanwhile (the members
// trusting a joining node); its error ends the wait.
func waitReady(ctx context.Context, c *child, serviceCert string, timeout time.Duration, exited <-chan *child, poll func() error) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	polls := every{interval: 500 * time.Millisecond}
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-deadline.C:
			return "", fmt.Errorf("sandbox: node %s not ready after %s; see %s", c.name, timeout, c.logPath)
		case e := <-exited:
			return "", fmt.Errorf("sandbox: node %s exited before it was ready (%v):\n%s", e.name, e.err, tail(e.logPath, 20))
		case now := <-tick.C:
			if poll != nil && polls.due(now) {
				if err := poll(); err != nil {
					return "", err
				}
			}
		}
		raw, err := os.ReadFile(filepath.Join(c.dataDir, node.RPCAddressFile))
		if err != nil {
			continue
		}
		addr := strings.TrimSpace(string(raw))
		if ready(ctx, addr, serviceCert) {
			return addr, nil
		}
	}
}

func ready(ctx context.Context, addr, serviceCert string) bool {
	pemBytes, err := os.ReadFile(serviceCert)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return false
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/node/ready", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tail(path string, lines int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(raw, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

func printReady(out io.Writer, ws string, m Manifest) {
	if out == nil {
		return
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(mustGetwd(), p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	addr := m.Nodes[0].RPCAddress
	fmt.Fprintf(out, "Coco sandbox ready: %d node(s), workspace %s\n", len(m.Nodes), rel(ws))
	for _, nd := range m.Nodes {
		fmt.Fprintf(out, "  %s  https://%s  (config %s)\n", nd.Name, nd.RPCAddress, rel(nd.Config))
	}
	auth := fmt.Sprintf("--cacert %s --cert %s --key %s", rel(m.ServiceCert), rel(filepath.Join(ws, "user0_cert.pem")), rel(filepath.Join(ws, "user0_privk.pem")))
	fmt.Fprintf(out, "Write a private message and wait for it to commit:\n  curl %s -X POST 'https://%s/app/log/private?wait=commit' -H 'content-type: application/json' -d '{\"id\": 1, \"msg\": \"hello\"}'\n", auth, addr)
	fmt.Fprintf(out, "Read it back:\n  curl %s 'https://%s/app/log/private?id=1'\n", auth, addr)
	fmt.Fprintf(out, "Get its receipt (use the x-coco-txid of the write):\n  curl %s 'https://%s/app/receipt?transaction_id=<view.seqno>'\n", auth, addr)
	fmt.Fprintln(out, "Writes go to any node (a backup forwards them to the primary); GET /node/network shows who is primary.")
	if len(m.Nodes) > 1 {
		last := m.Nodes[len(m.Nodes)-1]
		fmt.Fprintf(out, "Stop one node (pids in %s) and start it again by hand; it rejoins and catches up:\n  kill %d; coco node start --config %s\n",
			rel(filepath.Join(ws, ManifestFile)), last.PID, rel(last.Config))
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}

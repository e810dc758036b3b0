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
	Name       string `json:"name"`
	RPCAddress string `json:"rpc_address"`
	LedgerDir  string `json:"ledger_dir"`
	Config     string `json:"config"`
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
}

// ErrNodes reports an unsupported node count.
var ErrNodes = errors.New("sandbox: unsupported node count")

// Run creates (or reopens) the workspace, starts the nodes, writes
// sandbox.json and prints how to use the service, then waits for ctx.
func Run(ctx context.Context, opts Options) error {
	if opts.Nodes != 1 {
		return fmt.Errorf("%w %d: this version runs single-node services (--nodes 1); replication comes with the raft network", ErrNodes, opts.Nodes)
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
	exited := make(chan *child, len(nodes))
	for _, nd := range nodes {
		c, err := startChild(opts.Binary, nd, exited)
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	serviceCert := filepath.Join(ws, "service_cert.pem")
	for i, c := range children {
		addr, err := waitReady(ctx, c, serviceCert, opts.ReadyTimeout, exited)
		if err != nil {
			return err
		}
		nodes[i].RPCAddress = addr
		nodes[i].PID = c.cmd.Process.Pid
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
	select {
	case <-ctx.Done():
		fmt.Fprintln(opts.Out, "stopping the sandbox")
		return nil
	case c := <-exited:
		return fmt.Errorf("sandbox: node %s exited: %v; see %s", c.name, c.err, c.logPath)
	}
}

// prepare creates identities and node configurations that do not exist yet.
func prepare(ws string, opts Options) ([]NodeEntry, error) {
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"member0", "user0"} {
		if _, err := os.Stat(filepath.Join(ws, name+"_cert.pem")); errors.Is(err, os.ErrNotExist) {
			if _, _, err := Keygen(ws, name); err != nil {
				return nil, err
			}
		}
	}
	var nodes []NodeEntry
	for i := range opts.Nodes {
		name := fmt.Sprintf("node%d", i)
		dir := filepath.Join(ws, name)
		cfgPath := filepath.Join(dir, "node.toml")
		if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
			port := 0
			if opts.BasePort != 0 {
				port = opts.BasePort + i
			}
			if err := writeNodeConfig(dir, name, port); err != nil {
				return nil, err
			}
		}
		cfg, err := node.LoadConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, NodeEntry{Name: name, RPCAddress: cfg.Network.RPCAddress, LedgerDir: cfg.Storage.LedgerDir, Config: cfgPath})
	}
	return nodes, nil
}

func writeNodeConfig(dir, name string, port int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`# Coco node configuration, written by "coco sandbox".
# Restart this node by hand with: coco node start --config %s
name = %q

[network]
rpc_address = "127.0.0.1:%d"

[storage]
ledger_dir = "ledger"
data_dir = "data"

[service]
cert_file = "../service_cert.pem"

[start]
members = [{ cert_file = "../member0_cert.pem" }]
users = [{ cert_file = "../user0_cert.pem" }]

[ledger]
signature_interval_ms = 0

[log]
level = "info"
`, filepath.Join(dir, "node.toml"), name, port)
	return os.WriteFile(filepath.Join(dir, "node.toml"), []byte(cfg), 0o644)
}

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
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
	c := &child{name: nd.Name, cmd: cmd, logPath: logPath, dataDir: cfg.Storage.DataDir, done: make(chan struct{})}
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
func waitReady(ctx context.Context, c *child, serviceCert string, timeout time.Duration, exited <-chan *child) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-deadline.C:
			return "", fmt.Errorf("sandbox: node %s not ready after %s; see %s", c.name, timeout, c.logPath)
		case e := <-exited:
			return "", fmt.Errorf("sandbox: node %s exited before it was ready (%v):\n%s", e.name, e.err, tail(e.logPath, 20))
		case <-tick.C:
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
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cocoledger/coco/client"
)

// ErrWorkspace reports a workspace directory that cannot be used: missing,
// without sandbox.json, or without the user0 identity.
var ErrWorkspace = errors.New("bench: bad workspace")

// Workspace is what a run needs from a sandbox workspace directory.
type Workspace struct {
	Nodes          []string // RPC addresses, in sandbox.json order
	ServiceCertPEM []byte
	CertPEM        []byte // user0's certificate
	KeyPEM         []byte // user0's private key
}

// sandboxFile mirrors the part of sandbox.json the bench reads; other fields
// belong to the sandbox and are ignored.
type sandboxFile struct {
	ServiceCert string `json:"service_cert"`
	Nodes       []struct {
		Name       string `json:"name"`
		RPCAddress string `json:"rpc_address"`
	} `json:"nodes"`
}

// LoadWorkspace reads DIR/sandbox.json, the service certificate it names
// (relative paths are relative to dir) and DIR/user0_cert.pem and
// DIR/user0_privk.pem.
func LoadWorkspace(dir string) (*Workspace, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%w %s: %w (start a network with `coco sandbox`, which creates it)", ErrWorkspace, dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%w %s: not a directory", ErrWorkspace, dir)
	}
	path := filepath.Join(dir, "sandbox.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: no sandbox.json; is a `coco sandbox` running with this workspace? %w", ErrWorkspace, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWorkspace, err)
	}
	var sf sandboxFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWorkspace, path, err)
	}
	if sf.ServiceCert == "" {
		return nil, fmt.Errorf("%w: %s: no \"service_cert\"", ErrWorkspace, path)
	}
	if len(sf.Nodes) == 0 {
		return nil, fmt.Errorf("%w: %s: no nodes", ErrWorkspace, path)
	}
	ws := &Workspace{}
	for i, n := range sf.Nodes {
		if n.RPCAddress == "" {
			return nil, fmt.Errorf("%w: %s: node %d (%q) has no \"rpc_address\"", ErrWorkspace, path, i, n.Name)
		}
		ws.Nodes = append(ws.Nodes, n.RPCAddress)
	}
	read := func(name, what string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrWorkspace, what, err)
		}
		return b, nil
	}
	if ws.ServiceCertPEM, err = read(sf.ServiceCert, "service certificate"); err != nil {
		return nil, err
	}
	if ws.CertPEM, err = read("user0_cert.pem", "user0 certificate"); err != nil {
		return nil, err
	}
	if ws.KeyPEM, err = read("user0_privk.pem", "user0 private key"); err != nil {
		return nil, err
	}
	return ws, nil
}

// ErrNoPrimary reports a network that has no primary to send writes to.
var ErrNoPrimary = errors.New("bench: the network has no primary")

// Primary asks the workspace's nodes, in order, which node is primary and
// returns its RPC address: for runs whose clients, like leader-aware
// client libraries, send writes straight to the primary instead of through
// a backup that forwards them.
func (ws *Workspace) Primary(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range ws.Nodes {
		c, err := client.New(client.Config{Address: addr, ServiceCertPEM: ws.ServiceCertPEM})
		if err != nil {
			return "", err
		}
		nw, err := c.Network(ctx)
		c.CloseIdleConnections()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range nw.Nodes {
			if n.Primary {
				return n.RPCAddress, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s knows no primary", addr))
	}
	return "", fmt.Errorf("%w: %w", ErrNoPrimary, errors.Join(errs...))
}

package bench

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workspace writes a sandbox workspace with the given sandbox.json.
func workspace(t *testing.T, sandboxJSON string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"sandbox.json":     sandboxJSON,
		"service_cert.pem": "SERVICE",
		"user0_cert.pem":   "CERT",
		"user0_privk.pem":  "KEY",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const twoNodes = `{"service_cert": "service_cert.pem", "nodes": [
	{"name": "n0", "rpc_address": "127.0.0.1:8000", "ledger_dir": "n0/ledger", "config": "n0.toml"},
	{"name": "n1", "rpc_address": "127.0.0.1:8001", "ledger_dir": "n1/ledger", "config": "n1.toml"}]}`

func TestLoadWorkspace(t *testing.T) {
	dir := workspace(t, twoNodes)
	ws, err := LoadWorkspace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ws.Nodes, ",") != "127.0.0.1:8000,127.0.0.1:8001" || string(ws.ServiceCertPEM) != "SERVICE" || string(ws.CertPEM) != "CERT" || string(ws.KeyPEM) != "KEY" {
		t.Fatalf("workspace %+v", ws)
	}

	// An absolute service_cert path is used as is.
	abs := filepath.Join(t.TempDir(), "elsewhere.pem")
	if err := os.WriteFile(abs, []byte("ELSEWHERE"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir = workspace(t, `{"service_cert": "`+abs+`", "nodes": [{"name": "n0", "rpc_address": "localhost:9"}]}`)
	if ws, err := LoadWorkspace(dir); err != nil || string(ws.ServiceCertPEM) != "ELSEWHERE" {
		t.Fatalf("absolute service_cert: %+v, %v", ws, err)
	}
}

func TestLoadWorkspaceErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := LoadWorkspace(missing); !errors.Is(err, ErrWorkspace) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "coco sandbox") {
		t.Errorf("missing dir: %v", err)
	}
	empty := t.TempDir()
	if _, err := LoadWorkspace(empty); !errors.Is(err, ErrWorkspace) || !strings.Contains(err.Error(), "no sandbox.json") {
		t.Errorf("no sandbox.json: %v", err)
	}
	for _, tc := range []struct{ json, remove, want string }{
		{json: `{"nodes": [`, want: "sandbox.json: unexpected end"},
		{json: `{"nodes": [{"rpc_address": "a:1"}]}`, want: `no "service_cert"`},
		{json: `{"service_cert": "service_cert.pem", "nodes": []}`, want: "no nodes"},
		{json: `{"service_cert": "service_cert.pem", "nodes": [{"name": "n0"}]}`, want: `node 0 ("n0") has no "rpc_address"`},
		{json: twoNodes, remove: "service_cert.pem", want: "service certificate"},
		{json: twoNodes, remove: "user0_cert.pem", want: "user0 certificate"},
		{json: twoNodes, remove: "user0_privk.pem", want: "user0 private key"},
	} {
		dir := workspace(t, tc.json)
		if tc.remove != "" {
			if err := os.Remove(filepath.Join(dir, tc.remove)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := LoadWorkspace(dir)
		if !errors.Is(err, ErrWorkspace) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s without %q: %v; want %q", tc.json, tc.remove, err, tc.want)
		}
		if tc.remove != "" && !strings.Contains(err.Error(), tc.remove) {
			t.Errorf("error does not name the missing file %s: %v", tc.remove, err)
		}
	}
}

package node

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const minimalConfig = `
[network]
rpc_address = "127.0.0.1:8000"
[storage]
ledger_dir = "ledger"
data_dir = "/abs/data"
[service]
cert_file = "service_cert.pem"
[start]
members = [{ cert_file = "m.pem" }]
`

func TestConfigDefaultsAndPaths(t *testing.T) {
	c, err := ParseConfig([]byte(minimalConfig), "/base")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.LedgerDir != filepath.Join("/base", "ledger") || c.Storage.DataDir != "/abs/data" || c.Start.Members[0].CertFile != "/base/m.pem" {
		t.Fatalf("paths not resolved against the config's directory: %+v", c.Storage)
	}
	if c.Ledger.ChunkSize != DefaultChunkSize || c.Ledger.SignatureIntervalMS != 0 || c.HTTP.MaxBodyBytes != DefaultMaxBodyBytes || c.Attest.Platform != "virtual" {
		t.Fatalf("defaults not applied: %+v %+v", c.Ledger, c.HTTP)
	}
	// What Marshal writes parses back to the same configuration.
	raw, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(raw, "/elsewhere")
	if err != nil {
		t.Fatalf("marshalled config does not parse: %v\n%s", err, raw)
	}
	if c2.Storage != c.Storage || c2.Ledger != c.Ledger || c2.HTTP != c.HTTP {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
}

func TestConfigRejects(t *testing.T) {
	for name, tc := range map[string]struct{ extra, want string }{
		"unknown key":            {"[ledger]\nchunk_sise = 5\n", "unknown key(s) ledger.chunk_sise"},
		"unknown table":          {"[nonsense]\nx = 1\n", "nonsense"},
		"wrong type":             {"[http]\nmax_body_bytes = \"big\"\n", "line"},
		"small chunk":            {"[ledger]\nchunk_size = 10\n", "ledger.chunk_size 10"},
		"bad sig interval":       {"[ledger]\nsignature_interval_ms = -1\n", "signature_interval_ms"},
		"huge body":              {"[http]\nmax_body_bytes = 1000000000\n", "max_body_bytes"},
		"bad log level":          {"[log]\nlevel = \"loud\"\n", "log.level"},
		"bad address":            {"", "rpc_address"},
		"duplicate key":          {"[ledger]\nchunk_size = 5000\nchunk_size = 6000\n", "line"},
		"tdx without collateral": {"[attestation]\nplatform = \"tdx\"\n", "tdx_collateral_dir"},
		"collateral on virtual":  {"[attestation]\ntdx_collateral_dir = \"pcs\"\n", "tdx_collateral_dir"},
	} {
		t.Run(name, func(t *testing.T) {
			raw := minimalConfig + tc.extra
			if name == "bad address" {
				raw = strings.Replace(minimalConfig, "127.0.0.1:8000", "nowhere", 1)
			}
			_, err := ParseConfig([]byte(raw), "/base")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(minimalConfig)
	f.Add(minimalConfig + "[ledger]\nchunk_size = 4096\nsignature_interval_ms = 100\n")
	f.Add("name = 1")
	f.Add("[[start.members]]\ncert_file = \"x\"\n")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseConfig([]byte(raw), "/base")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			return
		}
		// Anything accepted is valid and absolute.
		if err := c.validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		if !filepath.IsAbs(c.Storage.LedgerDir) || !filepath.IsAbs(c.Storage.DataDir) {
			t.Fatalf("relative paths survived: %+v", c.Storage)
		}
	})
}

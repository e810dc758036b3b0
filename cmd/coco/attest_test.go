package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttestVerifyCLI runs `coco attest verify` on the real evidence
// go-sev-guest and go-tdx-guest ship (copied into internal/attest/testdata),
// at a time their certificates were valid: the SNP report with its VCEK,
// and the TDX production quote (genuine up to Intel's root; the library's
// sample collateral lists no TCB level it reaches, which the command
// reports by name). A flipped byte, a time past the certificates and a
// missing endorsement are refused with the failed check named.
func TestAttestVerifyCLI(t *testing.T) {
	data := filepath.Join("..", "..", "internal", "attest", "testdata")
	snp := []string{"attest", "verify", "--platform", "sev-snp", "--evidence", filepath.Join(data, "snp", "milan-report.bin"),
		"--vcek", filepath.Join(data, "snp", "milan-vcek.der")}
	tdxQuote := filepath.Join(data, "tdx", "tdx_prod_quote_SPR_E4.dat")
	tdx := []string{"attest", "verify", "--platform", "tdx", "--evidence", tdxQuote}
	collateral := []string{"--tcb-info", filepath.Join(data, "tdx", "sample_tcbInfo_response"),
		"--qe-identity", filepath.Join(data, "tdx", "sample_qeIdentity_response"), "--pck-crl", filepath.Join(data, "tdx", "pckcrl"),
		"--root-crl", filepath.Join(data, "tdx", "rootcrl.der"), "--tcb-signing-chain", filepath.Join(data, "tdx", "tcb_signing_chain.pem")}
	with := func(base []string, more ...string) []string { return append(append([]string(nil), base...), more...) }

	out, err := coco(t, with(snp, "--time", "2024-01-01T00:00:00Z", "--json")...)
	if err != nil {
		t.Fatalf("the real SNP report: %v\n%s", err, out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if v["platform"] != "sev-snp" || v["secure"] != true || v["debug"] != true ||
		v["measurement"] != "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01" ||
		v["tcb"] != "blSPL=2 teeSPL=0 snpSPL=5 ucodeSPL=68" {
		t.Fatalf("the real SNP report verified as %v", v)
	}
	if out, err := coco(t, with(tdx, "--time", "2023-07-01T01:00:00Z")...); err != nil ||
		!strings.Contains(out, "evidence OK (tdx") || !strings.Contains(out, "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb") {
		t.Fatalf("the real TDX quote: %v\n%s", err, out)
	}

	refused := map[string]struct {
		args []string
		want string
	}{
		"snp past its certificates": {with(snp, "--time", "2030-01-01T00:00:00Z"), "VCEK certificate expired"},
		"snp without its vcek":      {[]string{"attest", "verify", "--platform", "sev-snp", "--evidence", filepath.Join(data, "snp", "milan-report.bin")}, "--vcek"},
		"tdx past its certificates": {with(tdx, "--time", "2053-01-01T00:00:00Z"), "expired"},
		"tdx with sample collateral": {with(with(tdx, collateral...), "--time", "2023-07-01T01:00:00Z"),
			"no matching TCB level"},
		"tdx with partial collateral": {with(tdx, "--tcb-info", filepath.Join(data, "tdx", "sample_tcbInfo_response")), "--qe-identity"},
		"unknown platform":            {[]string{"attest", "verify", "--platform", "sgx", "--evidence", tdxQuote}, "sgx"},
	}
	// One flipped byte in the signed part of each (every byte is covered
	// by the attest package's tests).
	for name, src := range map[string]string{"snp byte 0x90 flipped": filepath.Join(data, "snp", "milan-report.bin"), "tdx byte 300 flipped": tdxQuote} {
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		at := 0x90
		if strings.Contains(name, "tdx") {
			at = 300
		}
		raw[at] ^= 0x01
		bad := filepath.Join(t.TempDir(), "evidence")
		if err := os.WriteFile(bad, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, "tdx") {
			refused[name] = struct {
				args []string
				want string
			}{[]string{"attest", "verify", "--platform", "tdx", "--evidence", bad, "--time", "2023-07-01T01:00:00Z"}, "quote's signature"}
		} else {
			refused[name] = struct {
				args []string
				want string
			}{[]string{"attest", "verify", "--platform", "sev-snp", "--evidence", bad, "--vcek", filepath.Join(data, "snp", "milan-vcek.der"),
				"--time", "2024-01-01T00:00:00Z"}, "signature"}
		}
	}
	for name, c := range refused {
		if out, err := coco(t, c.args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v\n%s\nwant a failure naming %q", name, err, out, c.want)
		}
	}
}

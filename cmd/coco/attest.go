package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/attest"
)

func newAttestCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "attest", Short: "Work with attestation evidence"}
	var (
		platform, evidence, bundleFile, vcek, at string
		tcbInfo, qeIdentity, pckCRL, rootCRL     string
		signingChain                             string
		asJSON                                   bool
	)
	verify := &cobra.Command{
		Use: "verify --platform sev-snp|tdx|virtual --evidence FILE [--vcek FILE] [--tcb-info FILE --qe-identity FILE --pck-crl FILE --root-crl FILE --tcb-signing-chain FILE] [--time RFC3339] [--json]\n" +
			"  coco attest verify --bundle FILE [--time RFC3339] [--json]",
		Short: "Verify attestation evidence offline: an SNP report with its VCEK, a TDX quote with Intel's collateral, or a bundle from GET /node/quotes",
		Long: `Verifies attestation evidence offline (nothing is fetched from AMD or Intel) and prints
what it establishes: platform, measurement, report data, TCB, debug, host data.

  sev-snp  --evidence: the raw attestation report (1184 bytes); --vcek: its VCEK (or VLEK)
           certificate, DER or PEM, as AMD's KDS serves it. The AMD roots are built in.
  tdx      --evidence: the raw quote; --tcb-info, --qe-identity: the PCS responses (JSON);
           --pck-crl, --root-crl: the CRLs; --tcb-signing-chain: the TCB-Info-Issuer-Chain
           header, as Intel's PCS serves them. Intel's root is built in. Without collateral
           the quote is checked up to Intel's root but its TCB status is not evaluated.
  virtual  --evidence: virtual evidence (proves nothing; for tests).
  --bundle: an evidence bundle (CBOR, or base64 as in GET /node/quotes) instead.

Certificates, CRLs and collateral are checked at --time (default: now). The command exits
non-zero naming the check that failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--time %q: %w", at, err)
				}
				now = t
			}
			b, err := evidenceBundle(platform, evidence, bundleFile, vcek, [5]string{tcbInfo, qeIdentity, pckCRL, rootCRL, signingChain})
			if err != nil {
				return err
			}
			var v *attest.Verified
			if b.Platform == attest.PlatformTDX && len(b.Endorsements) == 0 {
				v, err = attest.VerifyTDXQuote(b.Evidence, now)
			} else {
				var reg *attest.Registry
				if reg, err = attest.NewVerifier(); err != nil {
					return err
				}
				v, err = reg.Verify(b, now)
			}
			if err != nil {
				return fmt.Errorf("%s evidence does not verify: %w", b.Platform, err)
			}
			if asJSON {
				return printJSON(cmd, v)
			}
			out, _ := json.Marshal(v)
			var fields map[string]any
			_ = json.Unmarshal(out, &fields)
			cmd.Printf("evidence OK (%s, checked at %s)\n", b.Platform, now.UTC().Format(time.RFC3339))
			for _, k := range []string{"platform", "measurement", "report_data", "secure", "tcb", "tcb_version", "debug", "host_data", "rtmrs"} {
				if val, ok := fields[k]; ok {
					cmd.Printf("  %-12s %v\n", k+":", val)
				}
			}
			if !v.Secure {
				cmd.Println("  WARNING: not hardware-backed: this evidence proves nothing")
			}
			return nil
		},
	}
	f := verify.Flags()
	f.StringVar(&platform, "platform", "", "sev-snp, tdx or virtual (with --evidence)")
	f.StringVar(&evidence, "evidence", "", "raw evidence: SNP attestation report, TDX quote, or virtual evidence")
	f.StringVar(&bundleFile, "bundle", "", "evidence bundle (CBOR or base64), instead of --platform/--evidence")
	f.StringVar(&vcek, "vcek", "", "sev-snp: VCEK or VLEK certificate (DER or PEM)")
	f.StringVar(&tcbInfo, "tcb-info", "", "tdx: TCB info (Intel PCS JSON response)")
	f.StringVar(&qeIdentity, "qe-identity", "", "tdx: QE identity (Intel PCS JSON response)")
	f.StringVar(&pckCRL, "pck-crl", "", "tdx: PCK CRL (DER or PEM)")
	f.StringVar(&rootCRL, "root-crl", "", "tdx: root CA CRL (DER or PEM)")
	f.StringVar(&signingChain, "tcb-signing-chain", "", "tdx: TCB signing chain (PEM, or the TCB-Info-Issuer-Chain header value)")
	f.StringVar(&at, "time", "", "check certificates and collateral at this time (RFC 3339; default now)")
	f.BoolVar(&asJSON, "json", false, "print what was verified as JSON")
	cmd.AddCommand(verify)
	return cmd
}

// evidenceBundle builds the bundle to verify from the command's files.
func evidenceBundle(platform, evidence, bundleFile, vcek string, tdx [5]string) (*attest.Bundle, error) {
	if bundleFile != "" {
		if platform != "" || evidence != "" {
			return nil, errors.New("give --bundle, or --platform and --evidence, not both")
		}
		raw, err := os.ReadFile(bundleFile)
		if err != nil {
			return nil, err
		}
		if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err == nil {
			raw = dec
		}
		return attest.UnmarshalBundle(raw)
	}
	if platform == "" || evidence == "" {
		return nil, errors.New("give --platform and --evidence (or --bundle)")
	}
	raw, err := os.ReadFile(evidence)
	if err != nil {
		return nil, err
	}
	b := &attest.Bundle{Platform: platform, Evidence: raw}
	tdxGiven := tdx != [5]string{}
	switch platform {
	case attest.PlatformSEVSNP:
		if vcek == "" || tdxGiven {
			return nil, errors.New("sev-snp evidence takes --vcek FILE (and no TDX collateral)")
		}
		cert, err := readDER(vcek, "CERTIFICATE")
		if err != nil {
			return nil, fmt.Errorf("--vcek: %w", err)
		}
		b.Endorsements = [][]byte{cert}
	case attest.PlatformTDX:
		if vcek != "" {
			return nil, errors.New("tdx evidence takes no --vcek")
		}
		if !tdxGiven {
			return b, nil // the quote alone: checked without collateral
		}
		var files [5][]byte
		for i, name := range []string{"--tcb-info", "--qe-identity", "--pck-crl", "--root-crl", "--tcb-signing-chain"} {
			if tdx[i] == "" {
				return nil, fmt.Errorf("tdx collateral needs %s too (or give none to check the quote alone)", name)
			}
			if files[i], err = os.ReadFile(tdx[i]); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		return attest.NewTDXBundle(raw, attest.TDXCollateral{TCBInfo: files[0], QEIdentity: files[1], PCKCRL: files[2], RootCACRL: files[3], TCBSigningChain: files[4]})
	case attest.PlatformVirtual:
		if vcek != "" || tdxGiven {
			return nil, errors.New("virtual evidence takes no endorsements")
		}
	default:
		return nil, fmt.Errorf("--platform %q: want sev-snp, tdx or virtual", platform)
	}
	return b, nil
}

// readDER reads a file in DER, or PEM with one block of type typ.
func readDER(path, typ string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != typ {
			return nil, fmt.Errorf("%s holds a PEM %q block, want %q", path, b.Type, typ)
		}
		return b.Bytes, nil
	}
	return raw, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		dir     string
		cfg     bench.Config
		private bool
		wait    string
		asJSON  bool
		to      string
	)
	cmd := &cobra.Command{
		Use:   "bench --workspace DIR",
		Short: "Load a running network's logging app and report throughput and latency",
		Long: `bench drives the logging app of the network described by DIR/sandbox.json
as user0 (DIR/user0_cert.pem, DIR/user0_privk.pem), with closed-loop clients
spread over the nodes, and reports executed and committed tx/s, latency
percentiles and errors by code.

--wait=commit (default): each write waits for commit; latency is commit latency.
--wait=none: writes return once executed; committed tx/s counts those found
committed after the run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := bench.LoadWorkspace(dir)
			if err != nil {
				return err
			}
			cfg.Nodes, cfg.ServiceCertPEM, cfg.CertPEM, cfg.KeyPEM = ws.Nodes, ws.ServiceCertPEM, ws.CertPEM, ws.KeyPEM
			switch to {
			case "all":
			case "primary":
				primary, err := ws.Primary(cmd.Context())
				if err != nil {
					return err
				}
				cfg.Nodes = []string{primary}
			default:
				return fmt.Errorf("bench: --to %q: want all (clients spread over every node; backups forward writes) or primary (leader-aware clients)", to)
			}
			cfg.Scope = client.Public
			if private {
				cfg.Scope = client.Private
			}
			cfg.Wait = bench.WaitMode(wait)
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if !asJSON {
				cmd.PrintErrf("running %d clients for %v against %d node(s)…\n", cfg.Clients, cfg.Duration, len(cfg.Nodes))
			}
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.Marshal(res)
				if err != nil {
					return err
				}
				// cmd.Println would go to stderr.
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b); err != nil {
					return err
				}
			} else if err := res.WriteText(cmd.OutOrStdout()); err != nil {
				return err
			}
			if res.Executed == 0 {
				return errors.New("bench: no write succeeded during the measured window")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "workspace", "", "sandbox workspace directory (holds sandbox.json and user0's identity)")
	f.StringVar(&to, "to", "all", "all: clients spread over every node (backups forward writes); primary: every client writes to the primary, as a leader-aware client library does")
	f.IntVar(&cfg.Clients, "clients", 64, "concurrent closed-loop clients, spread over the nodes")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the run, warm-up included")
	f.DurationVar(&cfg.Warmup, "warmup", 0, "start of the run left out of the statistics (0: 10% of --duration, at most 1s)")
	f.IntVar(&cfg.Size, "size", 100, "bytes per message")
	f.BoolVar(&private, "private", true, "write the private (encrypted) table; --private=false writes the public one")
	f.StringVar(&wait, "wait", string(bench.WaitCommit), "commit: each write waits for commit; none: writes return once executed")
	f.BoolVar(&cfg.HTTP2, "http2", false, "share HTTP/2 connections (--clients-per-conn each) instead of one HTTP/1.1 keep-alive connection per client")
	f.IntVar(&cfg.ClientsPerConn, "clients-per-conn", bench.DefaultClientsPerConn, "clients sharing one HTTP/2 connection (with --http2)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of text")
	cmd.MarkFlagRequired("workspace")
	return cmd
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/sandbox"
)

func newSandboxCmd() *cobra.Command {
	var opts sandbox.Options
	cmd := &cobra.Command{
		Use:   "sandbox [--workspace DIR] [--nodes N]",
		Short: "Start a local Coco service with fresh identities (again: restart it from its ledgers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			return sandbox.Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Workspace, "workspace", "workspace", "workspace directory")
	cmd.Flags().IntVar(&opts.Nodes, "nodes", 3, "number of nodes: 1, 3 or 5")
	cmd.Flags().IntVar(&opts.BasePort, "port", 8000, "RPC port of the first node (node-to-node ports from port+100; 0: any free ports)")
	cmd.Flags().Int64Var(&opts.ChunkSize, "ledger-chunk-size", 0, "ledger chunk size in bytes for new nodes (0: the node default)")
	return cmd
}

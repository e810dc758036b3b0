package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "coco",
		Short:         "Coco: a confidential consortium ledger",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Results go to standard output (cobra prints to standard error
	// unless told otherwise), errors to standard error.
	root.SetOut(os.Stdout)
	root.AddCommand(newKeygenCmd(), newNodeCmd(), newSandboxCmd(), newLedgerCmd(), newReceiptCmd(), newBenchCmd(), newGovCmd(), newAttestCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "coco:", err)
		os.Exit(1)
	}
}

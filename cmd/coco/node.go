package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/node"
)

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Run a node"}
	var config string
	start := &cobra.Command{
		Use:   "start --config node.toml",
		Short: "Start (or restart) a node from its TOML configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadConfig(config)
			if err != nil {
				return err
			}
			logger, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			tuneRuntime(cfg.Runtime)
			return node.Run(cmd.Context(), cfg, node.Options{Logger: logger})
		},
	}
	start.Flags().StringVar(&config, "config", "", "path to node.toml")
	start.MarkFlagRequired("config")
	cmd.AddCommand(start)
	return cmd
}

// tuneRuntime applies the configured GC settings unless the environment
// already sets them.
func tuneRuntime(c node.RuntimeConfig) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(c.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && c.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(c.MemoryLimitMB << 20)
	}
}

func newLogger(c node.LogConfig) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
}

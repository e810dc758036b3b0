package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cocoledger/coco/internal/vfs"
)

// RPCAddressFile is written to the data directory once the node listens: it
// holds the bound host:port (useful when the configuration asks for port 0).
const RPCAddressFile = "rpc_address"

// Run opens the node, listens on its RPC address and serves until ctx ends,
// then shuts down cleanly.
func Run(ctx context.Context, cfg *Config, opts Options) error {
	if opts.Context == nil {
		opts.Context = ctx
	}
	n, err := Open(cfg, opts)
	if err != nil {
		return err
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Network.RPCAddress); err != nil {
			n.Close()
			return fmt.Errorf("node: listen on %s: %w", cfg.Network.RPCAddress, err)
		}
	}
	if err := vfs.WriteFileAtomic(n.fs, n.dataPath(RPCAddressFile), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		ln.Close()
		n.Close()
		return fmt.Errorf("node: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- n.Serve(ln) }()
	n.log.Info("node serving", "rpc_address", ln.Addr().String(), "node_id", n.nodeID)
	select {
	case <-ctx.Done():
		n.log.Info("node stopping")
		err = n.Close()
		if serr := <-served; serr != nil {
			err = errors.Join(err, serr)
		}
	case err = <-served:
		err = errors.Join(err, n.Close())
	}
	return err
}

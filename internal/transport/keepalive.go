package transport

import (
	"net"
	"time"
)

// Dead peers. A node-to-node connection whose peer vanished without a
// reset (a host powered off, a partition) must fail soon, so that what
// waits on it — a forwarded write, the sender's queue — errors and
// retries rather than hanging until TCP's own timeouts, which are
// minutes. Keepalive probes catch an idle connection; the user timeout
// (Linux) catches one with unacknowledged data. Both sides set them.
const (
	keepAliveIdle     = 5 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
	// userTimeout bounds how long written data may stay unacknowledged
	// before the kernel drops the connection.
	userTimeout = 20 * time.Second
)

// tuneConn applies the dead-peer settings to a TCP connection (others,
// such as in-memory pipes in tests, are left as they are).
func tuneConn(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	if err := tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount}); err != nil {
		return err
	}
	return setUserTimeout(tc, userTimeout)
}

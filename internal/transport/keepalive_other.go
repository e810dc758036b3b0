//go:build !linux

package transport

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist:
// keepalive probes still catch an idle dead connection.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }

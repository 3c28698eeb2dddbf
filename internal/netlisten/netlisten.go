// Package netlisten binds TCP listeners the way Enterprise Gateway does for
// its ports (the configured port, else the next ones while they are taken)
// and guards their accept loops against floods (see Guard).
package netlisten

import (
	"fmt"
	"net"
	"strconv"
)

// Retrying binds ip:port, trying port+1 … port+retries when it is taken.
// Port 0 takes any free port at once.
func Retrying(ip string, port, retries int) (net.Listener, error) {
	var err error
	for i := 0; i <= retries; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port+i))); err == nil {
			return ln, nil
		}
		if port == 0 {
			break
		}
	}
	return nil, fmt.Errorf("listen on %s, ports %d..%d: %w", ip, port, port+retries, err)
}

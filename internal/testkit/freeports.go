package testkit

import "net"

// FreePorts returns n loopback ports that were free a moment ago, all
// different (each is held until all are picked). A server started on one
// may still lose it to another process: callers that can, retry.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

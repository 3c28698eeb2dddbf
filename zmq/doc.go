// Package zmq speaks the Jupyter kernel wire protocol over ZeroMQ.
//
// It owns everything between a kernel's five sockets and a Go value: the
// message model (raw JSON frames plus the few header fields routing needs),
// HMAC signing and verification, connection files and port allocation, a
// hardened transport for go-zeromq/zmq4 that refuses oversized frames and
// stalled handshakes, and a Client that holds one kernel's channels.
//
// The package knows nothing about HTTP or actors; the gateway's kernel actor
// and the tests both use the Client.
package zmq

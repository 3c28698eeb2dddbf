package zmq

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// ConnectionInfo is the content of a kernel connection file.
type ConnectionInfo struct {
	IP              string `json:"ip"`
	Transport       string `json:"transport"`
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name"`
}

// ErrBadConnectionInfo reports a connection file that cannot be used.
var ErrBadConnectionInfo = errors.New("zmq: bad connection info")

// Validate checks that the info names a reachable tcp endpoint and a
// supported signature scheme.
func (ci ConnectionInfo) Validate() error {
	if ci.Transport != "" && ci.Transport != "tcp" {
		return fmt.Errorf("%w: transport %q (only tcp is supported)", ErrBadConnectionInfo, ci.Transport)
	}
	if net.ParseIP(ci.IP) == nil && ci.IP != "localhost" {
		return fmt.Errorf("%w: ip %q", ErrBadConnectionInfo, ci.IP)
	}
	for _, p := range ci.ports() {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("%w: port %d", ErrBadConnectionInfo, p)
		}
	}
	if _, err := NewSigner(ci.SignatureScheme, ci.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConnectionInfo, err)
	}
	return nil
}

func (ci ConnectionInfo) ports() [5]int {
	return [5]int{ci.ShellPort, ci.IOPubPort, ci.StdinPort, ci.ControlPort, ci.HBPort}
}

// Port returns the port of channel ch.
func (ci ConnectionInfo) Port(ch Channel) int {
	switch ch {
	case Shell:
		return ci.ShellPort
	case IOPub:
		return ci.IOPubPort
	case Stdin:
		return ci.StdinPort
	case Control:
		return ci.ControlPort
	default:
		return ci.HBPort
	}
}

// ReadConnectionFile reads and validates a connection file.
func ReadConnectionFile(path string) (ConnectionInfo, error) {
	var ci ConnectionInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return ci, fmt.Errorf("zmq: read connection file: %w", err)
	}
	if err := json.Unmarshal(b, &ci); err != nil {
		return ci, fmt.Errorf("%w: %s: %w", ErrBadConnectionInfo, path, err)
	}
	return ci, ci.Validate()
}

// WriteConnectionFile writes ci to path with mode 0600, atomically (a
// temporary file renamed into place), so a kernel never reads half a file.
func WriteConnectionFile(path string, ci ConnectionInfo) error {
	return WriteConnectionFileFor(path, ci, -1, -1)
}

// WriteConnectionFileFor is WriteConnectionFile for a kernel that runs as
// another user (the gateway must be root): the file is owned by uid:gid
// (-1 keeps this process's). The owner is set on the open temporary file
// before it is renamed into place, and rename replaces whatever has the
// name, so a user who can write in the directory can neither redirect the
// write nor the change of owner to a file of their choosing.
func WriteConnectionFileFor(path string, ci ConnectionInfo, uid, gid int) error {
	b, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return fmt.Errorf("zmq: marshal connection info: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".conn-*") // created 0600
	if err != nil {
		return fmt.Errorf("zmq: write connection file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if uid >= 0 || gid >= 0 {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		_, err = tmp.Write(b)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("zmq: write connection file: %w", err)
	}
	return nil
}

// NewKey returns a fresh random HMAC key (128 bits, hex).
func NewKey() string {
	var b [16]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// NewConnectionInfo returns the connection info of a kernel on ip with the
// five channel ports (shell, iopub, stdin, control, heartbeat) and a fresh
// key.
func NewConnectionInfo(ip string, ports []int, kernelName string) ConnectionInfo {
	return ConnectionInfo{
		IP: ip, Transport: "tcp",
		ShellPort: ports[0], IOPubPort: ports[1], StdinPort: ports[2], ControlPort: ports[3], HBPort: ports[4],
		Key: NewKey(), SignatureScheme: "hmac-sha256", KernelName: kernelName,
	}
}

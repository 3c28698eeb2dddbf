package zmq

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
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

// endpoint is the zmq4 address of channel ch over the hardened transport.
func (ci ConnectionInfo) endpoint(ch Channel) string {
	return hardenedScheme + "://" + net.JoinHostPort(ci.IP, strconv.Itoa(ci.Port(ch)))
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
	b, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return fmt.Errorf("zmq: marshal connection info: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".conn-*") // created 0600
	if err != nil {
		return fmt.Errorf("zmq: write connection file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = tmp.Write(b)
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

// PortAllocator hands out free TCP ports on one IP. A port it has handed out
// is not handed out again until it is released or its hold expires, so two
// kernels started at the same moment never get the same port even before
// either kernel has bound it.
//
// Ports come from [Low, High]. The default range, 20000–32767, lies below
// both Linux's ephemeral range (32768–60999) and the range pyzmq's
// bind_to_random_port uses (49152–65535): a kernel's own random sockets
// (ipykernel binds one for its iopub thread) or any outgoing connection can
// then never take a port between our choice and the kernel's bind.
type PortAllocator struct {
	IP        string
	Low, High int
	Hold      time.Duration // how long an unreleased port stays reserved

	mu   sync.Mutex
	held map[int]time.Time
}

// The default port range of NewPortAllocator.
const (
	DefaultPortLow  = 20000
	DefaultPortHigh = 32767
)

// NewPortAllocator returns an allocator for ip over the default range that
// reserves ports for hold.
func NewPortAllocator(ip string, hold time.Duration) *PortAllocator {
	return &PortAllocator{IP: ip, Low: DefaultPortLow, High: DefaultPortHigh, Hold: hold, held: make(map[int]time.Time)}
}

// Allocate returns n distinct free ports.
func (a *PortAllocator) Allocate(n int) ([]int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for p, until := range a.held {
		if now.After(until) {
			delete(a.held, p)
		}
	}
	ports := make([]int, 0, n)
	// Keep every probe listener open until all n are chosen.
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 200*n {
			return nil, fmt.Errorf("zmq: no free ports on %s in %d..%d", a.IP, a.Low, a.High)
		}
		p := a.Low + mrand.IntN(a.High-a.Low+1)
		if _, taken := a.held[p]; taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(a.IP, strconv.Itoa(p)))
		if err != nil {
			continue // in use by someone else
		}
		open = append(open, l)
		a.held[p] = now.Add(a.Hold)
		ports = append(ports, p)
	}
	return ports, nil
}

// Release makes ports available again.
func (a *PortAllocator) Release(ports ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		delete(a.held, p)
	}
}

// NewConnectionInfo allocates five ports from a and returns connection info
// with a fresh key.
func NewConnectionInfo(a *PortAllocator, kernelName string) (ConnectionInfo, error) {
	p, err := a.Allocate(5)
	if err != nil {
		return ConnectionInfo{}, err
	}
	return ConnectionInfo{
		IP: a.IP, Transport: "tcp",
		ShellPort: p[0], IOPubPort: p[1], StdinPort: p[2], ControlPort: p[3], HBPort: p[4],
		Key: NewKey(), SignatureScheme: "hmac-sha256", KernelName: kernelName,
	}, nil
}

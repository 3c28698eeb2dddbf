package remote

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
)

// ErrPortRange reports an unusable `L..U` port range.
var ErrPortRange = errors.New("bad port range")

// PortRange is EG's `L..U` range for a remote kernel's ports; the zero
// value (`0..0`) lets the operating system choose.
type PortRange struct{ Low, High int }

// MinPortRangeSize is EG's EG_MIN_PORT_RANGE_SIZE default.
const MinPortRangeSize = 1000

// ParsePortRange reads `L..U`. A non-zero range must lie within
// 1024..65535 and hold at least minSize ports, as EG requires.
func ParsePortRange(s string, minSize int) (PortRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "..")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("%w %q: want L..U", ErrPortRange, s)
	}
	r := PortRange{l, h}
	if r.Any() {
		return r, nil
	}
	if l < 1024 || h > 65535 || h < l {
		return r, fmt.Errorf("%w %q: bounds must be within 1024..65535", ErrPortRange, s)
	}
	if h-l < minSize {
		return r, fmt.Errorf("%w %q: holds fewer than %d ports", ErrPortRange, s, minSize)
	}
	return r, nil
}

// Any reports the `0..0` range: any free port.
func (r PortRange) Any() bool { return r.Low == 0 && r.High == 0 }

func (r PortRange) String() string { return fmt.Sprintf("%d..%d", r.Low, r.High) }

// portTries is EG's MAX_PORT_RANGE_RETRIES: random picks per port.
const portTries = 5

// Listen binds a TCP listener on ip at a port of the range: a random one
// (up to five picks), or any free one for `0..0`.
func (r PortRange) Listen(ip string) (net.Listener, error) {
	if r.Any() {
		return net.Listen("tcp", net.JoinHostPort(ip, "0"))
	}
	var err error
	for range portTries {
		port := r.Low + rand.IntN(r.High-r.Low+1)
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port in %s after %d tries: %w", r, portTries, err)
}

// FreePorts picks n distinct free ports of the range on ip, for a kernel to
// bind: each is bound to prove it free, and all are released together (a
// kernel started right after takes them; another process could in between,
// which is the protocol's own race).
func (r PortRange) FreePorts(ip string, n int) ([]int, error) {
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := r.Listen(ip)
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

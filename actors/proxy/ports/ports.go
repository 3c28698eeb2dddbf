// Package ports picks the TCP ports of kernels: EG's `L..U` ranges, and an
// allocator that hands a local kernel's five channel ports out once each.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
)

// ErrRange reports an unusable `L..U` port range.
var ErrRange = errors.New("bad port range")

// Range is EG's `L..U` range for a remote kernel's ports; the zero
// value (`0..0`) lets the operating system choose.
type Range struct{ Low, High int }

// MinRangeSize is EG's EG_MIN_PORT_RANGE_SIZE default.
const MinRangeSize = 1000

// ParseRange reads `L..U`. A non-zero range must lie within
// 1024..65535 and hold at least minSize ports, as EG requires.
func ParseRange(s string, minSize int) (Range, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "..")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		return Range{}, fmt.Errorf("%w %q: want L..U", ErrRange, s)
	}
	r := Range{l, h}
	if r.Any() {
		return r, nil
	}
	if l < 1024 || h > 65535 || h < l {
		return r, fmt.Errorf("%w %q: bounds must be within 1024..65535", ErrRange, s)
	}
	if h-l < minSize {
		return r, fmt.Errorf("%w %q: holds fewer than %d ports", ErrRange, s, minSize)
	}
	return r, nil
}

// Any reports the `0..0` range: any free port.
func (r Range) Any() bool { return r.Low == 0 && r.High == 0 }

func (r Range) String() string { return fmt.Sprintf("%d..%d", r.Low, r.High) }

// portTries is EG's MAX_PORT_RANGE_RETRIES: random picks per port.
const portTries = 5

// Listen binds a TCP listener on ip at a port of the range: a random one
// (up to five picks), or any free one for `0..0`.
func (r Range) Listen(ip string) (net.Listener, error) {
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

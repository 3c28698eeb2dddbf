package actors

import (
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

func TestIOPubLimiter(t *testing.T) {
	testkit.True(t, newIOPubLimiter(&Config{}) == nil, "a limiter without limits")
	msg := func(typ string) *zmq.Message {
		m, err := zmq.NewMessage(typ, "s", "u", nil, map[string]any{})
		testkit.NoError(t, err)
		return m
	}
	l := newIOPubLimiter(&Config{IOPubMsgRateLimit: 10, RateLimitWindow: time.Second})
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		pass, crossed := l.admit(t0, msg("stream"), 10)
		testkit.True(t, pass && !crossed, "message %d under the limit was held back", i)
	}
	pass, crossed := l.admit(t0, msg("stream"), 10)
	testkit.True(t, !pass && crossed, "the 11th message in a second passed a limit of 10/s")
	pass, crossed = l.admit(t0, msg("stream"), 10)
	testkit.True(t, !pass && !crossed, "the warning was given twice")
	pass, _ = l.admit(t0, msg("status"), 10)
	testkit.True(t, pass, "a status was dropped")
	// A window later the rate is back under 80 %.
	pass, _ = l.admit(t0.Add(1100*time.Millisecond), msg("stream"), 10)
	testkit.True(t, pass, "output still dropped once the rate fell")

	d := newIOPubLimiter(&Config{IOPubDataRateLimit: 100, RateLimitWindow: time.Second})
	pass, _ = d.admit(t0, msg("display_data"), 90)
	testkit.True(t, pass, "90 bytes under a 100 B/s limit")
	pass, _ = d.admit(t0, msg("display_data"), 20)
	testkit.True(t, !pass, "110 bytes in a second passed a 100 B/s limit")
}

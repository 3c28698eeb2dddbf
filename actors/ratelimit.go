package actors

import (
	"time"

	"github.com/kernelgate/kernelgate/zmq"
)

// iopubLimiter is Jupyter Server's iopub rate limit for one session: over
// a sliding window, when the kernel's output runs faster than the message
// or data limit, output is dropped (the client is told once, on stderr of
// the cell concerned) until the rate falls below 80 % of the limit. Status,
// comm_open and execute_input always pass, so clients never lose track of
// the kernel.
type iopubLimiter struct {
	msgs, bytes float64 // limits per second; 0 is off
	window      time.Duration

	buckets  [iopubBuckets]struct{ msgs, bytes float64 }
	current  int64 // index of the bucket now filling, in bucket units since the epoch
	exceeded bool
}

const iopubBuckets = 30

// unlimited are the messages a rate limit never drops.
var unlimited = map[string]bool{"status": true, "comm_open": true, "execute_input": true}

func newIOPubLimiter(cfg *Config) *iopubLimiter {
	if cfg.IOPubMsgRateLimit <= 0 && cfg.IOPubDataRateLimit <= 0 {
		return nil
	}
	return &iopubLimiter{msgs: cfg.IOPubMsgRateLimit, bytes: cfg.IOPubDataRateLimit, window: cfg.RateLimitWindow}
}

// admit counts an iopub message of size bytes and reports whether it may go
// to the client, and whether the limit was just crossed (tell the client).
func (l *iopubLimiter) admit(now time.Time, m *zmq.Message, size int) (pass, crossed bool) {
	if unlimited[m.MsgType()] {
		return true, false
	}
	width := l.window / iopubBuckets
	idx := now.UnixNano() / int64(width)
	if gap := idx - l.current; gap > 0 {
		for i := int64(1); i <= min(gap, iopubBuckets); i++ {
			l.buckets[(l.current+i)%iopubBuckets] = struct{ msgs, bytes float64 }{}
		}
		l.current = idx
	}
	b := &l.buckets[idx%iopubBuckets]
	b.msgs++
	b.bytes += float64(size)
	var msgs, bytes float64
	for _, x := range l.buckets {
		msgs, bytes = msgs+x.msgs, bytes+x.bytes
	}
	secs := l.window.Seconds()
	over := func(v, limit, frac float64) bool { return limit > 0 && v/secs > frac*limit }
	switch {
	case over(msgs, l.msgs, 1) || over(bytes, l.bytes, 1):
		crossed = !l.exceeded
		l.exceeded = true
	case l.exceeded && !over(msgs, l.msgs, 0.8) && !over(bytes, l.bytes, 0.8):
		l.exceeded = false
	}
	return !l.exceeded, crossed
}

// rateWarning is what a client sees when its output starts being dropped.
func rateWarning(dropped *zmq.Message) *zmq.Message {
	text := "IOPub rate exceeded.\nkernelgate will drop this kernel's output to this client until the rate falls.\n" +
		"To change the limits, set KERNELGATE_IOPUB_MSG_RATE_LIMIT / KERNELGATE_IOPUB_DATA_RATE_LIMIT.\n"
	m, err := zmq.NewMessage("stream", "kernelgate", "kernelgate", dropped.ParentHeader, map[string]string{"name": "stderr", "text": text})
	if err != nil {
		return nil
	}
	return m
}

package zmq

import (
	"context"
	"fmt"
	"time"
)

// NudgeInterval is how often a kernel_info_request is repeated while waiting
// for a kernel to become ready.
const NudgeInterval = 200 * time.Millisecond

// Readiness follows the kernel_info handshake ("nudge"): a kernel is ready
// once it has answered one of our kernel_info_requests and at least one iopub
// message has arrived, which proves the iopub subscription is live (a SUB
// socket misses whatever the kernel publishes before the subscription lands).
// It is not safe for concurrent use; its owner feeds it every message.
type Readiness struct {
	Session, Username string

	probes map[string]struct{}
	reply  *Message
	iopub  bool
}

// Probe returns a new kernel_info_request to send on shell.
func (r *Readiness) Probe() (*Message, error) {
	m, err := NewMessage("kernel_info_request", r.Session, r.Username, nil, nil)
	if err != nil {
		return nil, err
	}
	if r.probes == nil {
		r.probes = make(map[string]struct{})
	}
	r.probes[m.Head().MsgID] = struct{}{}
	return m, nil
}

// Observe feeds one received message and reports whether the kernel is now
// ready.
func (r *Readiness) Observe(rc Received) bool {
	if rc.Msg != nil {
		switch {
		case rc.Channel == IOPub:
			r.iopub = true
		case r.reply == nil && r.IsProbeReply(rc.Msg):
			r.reply = rc.Msg
		}
	}
	return r.Ready()
}

// IsProbeReply reports whether m answers one of our probes; such replies
// belong to the handshake and are not forwarded to clients.
func (r *Readiness) IsProbeReply(m *Message) bool {
	if m.MsgType() != "kernel_info_reply" || len(r.probes) == 0 {
		return false
	}
	p, err := m.Parent()
	if err != nil {
		return false
	}
	_, ok := r.probes[p.MsgID]
	return ok
}

// Ready reports whether the handshake is complete.
func (r *Readiness) Ready() bool { return r.reply != nil && r.iopub }

// Reply returns the kernel_info_reply, once one has arrived.
func (r *Readiness) Reply() *Message { return r.reply }

// KernelInfo runs the handshake on a client that uses its inbox (no
// Options.Deliver): it sends kernel_info_request every NudgeInterval until
// the kernel is ready or ctx ends, and returns the reply. Messages read from
// the inbox meanwhile are consumed.
func (c *Client) KernelInfo(ctx context.Context) (*Message, error) {
	if c.inbox == nil {
		return nil, fmt.Errorf("zmq: KernelInfo needs the client's inbox")
	}
	r := Readiness{Session: c.opts.Identity, Username: "kernelgate"}
	tick := time.NewTicker(NudgeInterval)
	defer tick.Stop()
	for {
		probe, err := r.Probe()
		if err != nil {
			return nil, err
		}
		if err := c.Send(Shell, probe); err != nil {
			return nil, err
		}
	wait:
		for {
			select {
			case rc := <-c.inbox:
				if rc.Err != nil && rc.Msg == nil && isFatal(rc.Err) {
					return nil, rc.Err
				}
				if r.Observe(rc) {
					return r.Reply(), nil
				}
			case <-tick.C:
				break wait
			case <-ctx.Done():
				return nil, fmt.Errorf("zmq: kernel_info: %w", ctx.Err())
			}
		}
	}
}

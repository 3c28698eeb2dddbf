package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/fake"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// fakeGateway is a Gateway whose kernels are in-process synthetic kernels
// from a scriptable provisioner (actors/proxy/fake): lifecycle races are
// tested in milliseconds, without Python.
type fakeGateway struct {
	t    *testing.T
	g    *Gateway
	prov *fake.Provisioner
	m    *Metrics
}

func newFakeGateway(t *testing.T, mod func(*Config)) *fakeGateway {
	t.Helper()
	return newHookedGateway(t, fake.Hooks{}, mod)
}

// newHookedGateway is newFakeGateway whose provisioner has hooks from the
// first launch on: a pool fills as the gateway starts, before a test could
// set them.
func newHookedGateway(t *testing.T, hooks fake.Hooks, mod func(*Config)) *fakeGateway {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "kernels", "fake")
	testkit.NoError(t, os.MkdirAll(dir, 0o755))
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"),
		[]byte(`{"argv":["fake"],"display_name":"Fake","language":"synthetic"}`), 0o644))
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	prov := &fake.Provisioner{}
	prov.SetHooks(hooks)
	metrics := &Metrics{}
	cfg := Config{
		MaxKernelsPerUser: -1, DefaultUsername: "tester",
		LaunchTimeout: 5 * time.Second, ShutdownWait: time.Second, KernelInfoTimeout: 5 * time.Second,
		Specs:   kernelspecs.NewCache(kernelspecs.CacheOptions{Path: []string{root}, Default: "fake", Logger: log}),
		Proxies: proxy.NewRegistry(prov), Metrics: metrics, Logger: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	testkit.NoError(t, err)
	t.Cleanup(func() {
		prov.SetHooks(fake.Hooks{}) // nothing hangs any more
		g.Close(10 * time.Second)
	})
	return &fakeGateway{t: t, g: g, prov: prov, m: metrics}
}

// start starts a fake kernel and waits until it is idle.
func (f *fakeGateway) start() Model {
	f.t.Helper()
	m, err := f.g.StartKernel(StartRequest{Name: "fake"})
	testkit.NoError(f.t, err)
	f.waitState(m.ID, StateIdle)
	return m
}

func (f *fakeGateway) waitState(id, state string) {
	f.t.Helper()
	testkit.Eventually(f.t, 10*time.Second, func() error {
		m, err := f.g.Kernel(id)
		if err != nil {
			return err
		}
		if m.ExecutionState != state {
			return fmt.Errorf("state %s, want %s", m.ExecutionState, state)
		}
		return nil
	})
}

// gone waits until kernel id is out of the registry.
func (f *fakeGateway) gone(id string) {
	f.t.Helper()
	testkit.Eventually(f.t, 10*time.Second, func() error {
		if _, err := f.g.Kernel(id); err == nil {
			return fmt.Errorf("kernel %s still listed", id)
		}
		return nil
	})
}

// socket is a client websocket as the actor tree sees it: it records what
// is written, echoes pings (as a live client does) unless told not to, and
// can stall (a client that reads nothing).
type socket struct {
	t *testing.T

	// queued is what the writer queued and has not flushed (the writer's
	// own, unlocked).
	queued   []*zmq.Message
	queuedCh []zmq.Channel

	mu      sync.Mutex
	msgs    []*zmq.Message
	chans   []zmq.Channel
	code    int
	reason  string
	closed  chan struct{}
	pings   int
	mute    bool          // pings are not answered
	stalled chan struct{} // while open, writes block
	ack     func([]byte)
	// ended is called, as the connection's reader would, when the writer
	// closes the connection: a live client answers a close frame.
	ended func(Ending)
}

func newSocket(t *testing.T) *socket { return &socket{t: t, closed: make(chan struct{})} }

// Queue keeps a copy of m (the writer may reuse a merged message) until
// Flush.
func (s *socket) Queue(ch zmq.Channel, m *zmq.Message) {
	c := *m
	c.Content = bytes.Clone(m.Content)
	s.queued = append(s.queued, &c)
	s.queuedCh = append(s.queuedCh, ch)
}

func (s *socket) Queued() int { return 0 }

func (s *socket) Flush() error {
	queued, queuedCh := s.queued, s.queuedCh
	s.queued, s.queuedCh = nil, nil
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-s.closed:
			return fmt.Errorf("closed")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return fmt.Errorf("closed")
	default:
	}
	s.msgs = append(s.msgs, queued...)
	s.chans = append(s.chans, queuedCh...)
	return nil
}

func (s *socket) Ping(data []byte) error {
	s.mu.Lock()
	s.pings++
	ack, mute := s.ack, s.mute
	s.mu.Unlock()
	if ack != nil && !mute {
		ack(data)
	}
	return nil
}

func (s *socket) Close(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return
	default:
		s.code, s.reason = code, reason
		close(s.closed)
	}
	if s.ended != nil {
		e := EndBroken
		if code != closeWithoutCode && !s.mute && s.stalled == nil {
			e = EndHandshake
		}
		go s.ended(e)
	}
}

// attach attaches s to a session of kernel id; pongs go to the attachment.
func (f *fakeGateway) attach(id, session, lastMsgID string, s *socket) *Attachment {
	f.t.Helper()
	a, err := f.g.Attach(id, session, true, lastMsgID, s)
	testkit.NoError(f.t, err)
	s.mu.Lock()
	s.ack, s.ended = a.Ack, a.Close
	s.mu.Unlock()
	f.t.Cleanup(func() { a.Close(EndBroken) })
	return a
}

// texts returns the lines of the stream texts written so far, in order.
func (s *socket) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		if m.MsgType() == "stream" {
			var c struct{ Text string }
			json.Unmarshal(m.Content, &c)
			// A merged message holds several lines.
			out = append(out, strings.Split(strings.TrimSuffix(c.Text, "\n"), "\n")...)
		}
	}
	return out
}

// waitFor polls until the socket has a message of msgType whose content
// contains want, and returns it.
func (s *socket) waitFor(msgType, want string) *zmq.Message {
	s.t.Helper()
	var found *zmq.Message
	testkit.Eventually(s.t, 10*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range s.msgs {
			if m.MsgType() == msgType && (strings.Contains(string(m.Content), want) || inMerged(m, want)) {
				found = m
				return nil
			}
		}
		return fmt.Errorf("no %s with %q among %d messages", msgType, want, len(s.msgs))
	})
	return found
}

// inMerged reports whether a stream text want ("75\n", quoted as in the
// content) ends a line of a merged stream message.
func inMerged(m *zmq.Message, want string) bool {
	return m.MsgType() == "stream" && strings.HasPrefix(want, `"`) && strings.Contains(string(m.Content), `\n`+want[1:])
}

func (s *socket) waitClosed() (int, string) {
	s.t.Helper()
	testkit.Recv(s.t, s.closed, 15*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, s.reason
}

// execute sends code to the kernel on a's session.
func execute(t *testing.T, a *Attachment, session, code string) *zmq.Message {
	t.Helper()
	m, err := zmq.NewMessage("execute_request", session, "tester", nil, map[string]any{"code": code, "silent": false})
	testkit.NoError(t, err)
	a.Send(zmq.Shell, m)
	return m
}

// lines is the synthetic kernel's code for n numbered lines (echo 1 …).
func lines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "echo %d\n", i)
	}
	return b.String()
}

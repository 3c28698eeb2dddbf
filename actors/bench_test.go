package actors

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/zmq"
)

// BenchmarkListKernels1000 measures what GET /api/kernels costs the gateway
// with 1,000 kernels registered: reading the published snapshot and every
// kernel's atomics, and encoding the JSON body. The kernels are synthetic
// registry entries (1,000 real kernels do not fit this machine); the HTTP
// round trip on top is measured by the bench harness.
func BenchmarkListKernels1000(b *testing.B) {
	g := &Gateway{}
	for i := range 1000 {
		h := newKernelHandle(uuid.NewString(), "python3", fmt.Sprint("user", i%50), 1)
		h.connections.Store(int32(i % 3))
		g.live.add(h)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := json.Marshal(g.Kernels()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// discardSocket counts what a writer queues and flushes nothing.
type discardSocket struct{ queued, msgs int }

func (d *discardSocket) Queue(_ zmq.Channel, m *zmq.Message) { d.queued += messageSize(m); d.msgs++ }
func (d *discardSocket) Queued() int                         { return d.queued }
func (d *discardSocket) Flush() error                        { d.queued = 0; return nil }
func (d *discardSocket) Ping([]byte) error                   { return nil }
func (d *discardSocket) Close(int, string)                   {}

// BenchmarkWriterForward is the output path of a 64-byte stream message
// from the kernel actor's append to the log to the connection's queue: the
// log, the writer's batches (64 messages each, as a kernel's burst arrives)
// and, with merge, the coalescer of a client that has fallen behind. The
// socket's encoding and write are BenchmarkWSConnFlush's (package http).
// allocs/op is 0: the log allocates a chunk per 256 messages.
func BenchmarkWriterForward(b *testing.B) {
	for _, merge := range []bool{false, true} {
		b.Run(map[bool]string{false: "as-sent", true: "merged"}[merge], func(b *testing.B) {
			msgs := make([]*zmq.Message, 64)
			for i := range msgs {
				m, err := zmq.NewMessage("stream", "k", "u", []byte(`{"msg_id":"p"}`), map[string]string{"name": "stdout", "text": strings.Repeat("x", 63) + "\n"})
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = m
			}
			l := newOutLog(10000, 64<<20)
			sock := &discardSocket{}
			w := &writer{sock: sock, log: l, metrics: &Metrics{}, counted: new(atomic.Uint64), begun: make(chan struct{}), stop: make(chan stopWriter, 1)}
			w.begin(1)
			batch := len(msgs)
			if merge {
				batch = mergeBehind + 1 // the writer is behind: it merges
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range batch {
					l.append(zmq.IOPub, msgs[j%len(msgs)], 0)
				}
				l.trim(l.head.Load(), math.MaxUint64) // as the kernel actor does every 1024
				w.flush(false)
			}
			b.ReportMetric(float64(sock.msgs)/float64(b.N), "frames/msg")
		})
	}
}

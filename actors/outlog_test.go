package actors

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

func logMessage(t testing.TB, i int) *zmq.Message {
	m, err := zmq.NewMessage("stream", "s", "k", nil, map[string]string{"name": "stdout", "text": fmt.Sprint(i)})
	testkit.NoError(t, err)
	return m
}

func TestOutLogBoundsAndCursors(t *testing.T) {
	tests := []struct {
		name            string
		maxCount        int
		maxBytes        int64
		appended        int
		from            uint64
		wantFirst       uint64 // first seq a reader from `from` gets
		wantLostAtLeast uint64
	}{
		{"within bounds", 100, 1 << 20, 50, 1, 1, 0},
		{"from the middle", 100, 1 << 20, 50, 20, 20, 0},
		{"caught up", 100, 1 << 20, 50, 51, 51, 0},
		// Whole chunks are let go: entries up to one chunk past the bound
		// stay readable. Chunks of 16, 32, 64, 128, then 256 entries
		// start at seqs 1, 17, 49, 113, 241, 497, 753.
		{"count bound", 100, 1 << 20, 1000, 1, 753, 752},
		{"byte bound", 1 << 20, 6000, 1000, 1, 753, 752},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newOutLog(tt.maxCount, tt.maxBytes)
			for i := range tt.appended {
				l.append(zmq.IOPub, logMessage(t, i), 0)
				testkit.Equal(t, l.head.Load(), uint64(i+2))
			}
			testkit.True(t, int(l.head.Load()-l.low) <= tt.maxCount, "kept %d entries, bound %d", l.head.Load()-l.low, tt.maxCount)
			testkit.True(t, l.bytes <= tt.maxBytes, "kept %d bytes, bound %d", l.bytes, tt.maxBytes)
			cur, lost := l.at(tt.from)
			testkit.True(t, lost >= tt.wantLostAtLeast, "lost %d, want at least %d", lost, tt.wantLostAtLeast)
			n, _ := l.behind(cur)
			first := uint64(0)
			read := uint64(0)
			for e, ok := l.next(&cur); ok; e, ok = l.next(&cur) {
				if first == 0 {
					first = cur.seq - 1
				}
				testkit.True(t, e.m != nil, "entry %d has no message", cur.seq-1)
				read++
			}
			if tt.from <= uint64(tt.appended) {
				testkit.Equal(t, first, tt.wantFirst)
			}
			testkit.Equal(t, read, n)
			testkit.Equal(t, cur.seq, uint64(tt.appended+1))
		})
	}
}

func TestOutLogTrimAndFind(t *testing.T) {
	l := newOutLog(10000, 1<<30)
	var ids []string
	for i := range 600 {
		m := logMessage(t, i)
		ids = append(ids, m.Head().MsgID)
		l.append(zmq.IOPub, m, sessionNum(i%3))
	}
	testkit.Equal(t, l.find(ids[10], 1, l.head.Load()), uint64(11))     // i=10 is for session 1
	testkit.Equal(t, l.find(ids[10], 2, l.head.Load()), uint64(0))      // not session 2's
	testkit.Equal(t, l.find(ids[9], 2, l.head.Load()), uint64(10))      // i=9 is for everyone
	testkit.Equal(t, l.find(ids[500], 2, 400), uint64(0))               // after before
	testkit.Equal(t, l.find("no such id", 1, l.head.Load()), uint64(0)) // unknown
	l.trim(520, math.MaxUint64)
	testkit.Equal(t, l.low, uint64(520))
	testkit.Equal(t, l.oldest(), uint64(497))                      // the chunk [497, 753) holds 520
	testkit.Equal(t, l.find(ids[10], 1, l.head.Load()), uint64(0)) // gone
}

// One writer, many readers, no locks: every reader sees every entry once,
// in order (run with -race).
func TestOutLogConcurrentReaders(t *testing.T) {
	l := newOutLog(1<<20, 1<<40)
	const n = 20000
	msgs := make([]*zmq.Message, n)
	for i := range msgs {
		msgs[i] = logMessage(t, i)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur, _ := l.at(1)
			want := uint64(1)
			for want <= n {
				e, ok := l.next(&cur)
				if !ok {
					continue
				}
				if e.m != msgs[want-1] {
					t.Errorf("entry %d is not message %d", cur.seq-1, want)
					return
				}
				want++
			}
		}()
	}
	for _, m := range msgs {
		l.append(zmq.IOPub, m, 0)
	}
	wg.Wait()
}

package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestFIFOKeepsOrderAndBound(t *testing.T) {
	q := newFIFO[int](3)
	for i := range 3 {
		if !q.push(i) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.push(3) {
		t.Fatal("push beyond the bound was taken")
	}
	if got, _ := q.take(); got != 0 {
		t.Fatalf("took %d first, want 0", got)
	}
	// Room again; pushes after a take go behind what is queued.
	for _, v := range []int{3} {
		if !q.push(v) {
			t.Fatalf("push %d refused after a take", v)
		}
	}
	for want := 1; want <= 3; want++ {
		if got, ok := q.take(); !ok || got != want {
			t.Fatalf("took %d, %v; want %d", got, ok, want)
		}
	}
	if _, ok := q.take(); ok {
		t.Fatal("took from an empty queue")
	}
}

// A queue that never quite drains (a steady flow one item behind) keeps
// its array at about its bound instead of growing it with every push.
func TestFIFONeverDrainedStaysBounded(t *testing.T) {
	q := newFIFO[int](8)
	q.push(0)
	for i := 1; i < 100_000; i++ {
		q.push(i)
		if got, _ := q.take(); got != i-1 {
			t.Fatalf("took %d, want %d", got, i-1)
		}
	}
	if c := cap(q.items); c > 2*fifoKeep {
		t.Fatalf("array grew to %d for a queue of at most 2", c)
	}
}

// A drained queue lets a burst's array go.
func TestFIFODrainedLetsGo(t *testing.T) {
	q := newFIFO[int](1000)
	for i := range 1000 {
		q.push(i)
	}
	for range 1000 {
		q.take()
	}
	if q.items != nil {
		t.Fatalf("a drained queue keeps an array of %d", cap(q.items))
	}
}

func TestFIFOPushWait(t *testing.T) {
	defer leaktest.Check(t)()
	tests := []struct {
		name string
		act  func(q *fifo[int], gone chan struct{}) // what happens while the push waits
		want bool
	}{
		{"room comes", func(q *fifo[int], _ chan struct{}) { q.take() }, true},
		{"gone first", func(_ *fifo[int], gone chan struct{}) { close(gone) }, false},
		{"time runs out", func(*fifo[int], chan struct{}) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFIFO[int](1)
			q.push(0)
			gone := make(chan struct{})
			got := make(chan bool)
			go func() { got <- q.pushWait(1, 200*time.Millisecond, gone) }()
			// The push is waiting once it has asked for room.
			testkit.Eventually(t, 5*time.Second, func() error {
				q.mu.Lock()
				defer q.mu.Unlock()
				if q.room == nil {
					return errors.New("the push is not waiting")
				}
				return nil
			})
			tt.act(q, gone)
			if ok := <-got; ok != tt.want {
				t.Fatalf("pushWait = %v, want %v", ok, tt.want)
			}
			if tt.want {
				if v, _ := q.take(); v != 1 {
					t.Fatalf("took %d, want the waiting push's 1", v)
				}
			}
		})
	}
}

// ready has a token while anything is queued, however many pushes.
func TestFIFOReadyCoalesces(t *testing.T) {
	q := newFIFO[int](10)
	for i := range 5 {
		q.push(i)
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no token with items queued")
	}
	select {
	case <-q.ready:
		t.Fatal("a second token for one batch")
	default:
	}
}

package actors

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// takeAsync runs in.take on a goroutine and returns its answer's channel.
func takeAsync(in *inbox) <-chan bool {
	got := make(chan bool, 1)
	go func() { got <- in.take() }()
	return got
}

func TestInboxWaitsForRoomAndEndsWaitsOnClose(t *testing.T) {
	defer leaktest.Check(t)()
	in := newInbox(2)
	for i := range 2 {
		testkit.True(t, in.take(), "take %d, below the bound, refused", i)
	}
	third := takeAsync(in)
	select {
	case <-third:
		t.Fatal("a take beyond the bound did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	in.release()
	testkit.True(t, <-third, "the take waiting for room got none")
	fourth := takeAsync(in)
	in.close()
	testkit.True(t, !<-fourth, "a take waiting when the launch ended went through")
	testkit.True(t, !in.take(), "a take after the launch ended went through")
}

// Room made by a burst of releases while several readers wait reaches
// them all.
func TestInboxBurstOfReleasesWakesEveryWaiter(t *testing.T) {
	defer leaktest.Check(t)()
	in := newInbox(4)
	for range 4 {
		in.take()
	}
	waiting := []<-chan bool{takeAsync(in), takeAsync(in), takeAsync(in)}
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := in.waiters.Load(); n != 3 {
			return fmt.Errorf("%d readers waiting", n)
		}
		return nil
	})
	for range 3 {
		in.release()
	}
	for i, got := range waiting {
		select {
		case ok := <-got:
			testkit.True(t, ok, "reader %d refused", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("reader %d still waits with room in the inbox", i)
		}
	}
}

// Readers racing for room never hold more than the bound between them and
// all get through as the actor releases: no wake-up is lost.
func TestInboxBoundHoldsUnderRacingReaders(t *testing.T) {
	defer leaktest.Check(t)()
	const size, readers, each = 3, 4, 5000
	in := newInbox(size)
	var inFlight, most atomic.Int64
	taken := make(chan struct{}, readers*each)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if !in.take() {
					t.Error("take refused before close")
					return
				}
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				taken <- struct{}{}
			}
		}()
	}
	for range readers * each { // the actor
		select {
		case <-taken:
		case <-time.After(10 * time.Second):
			t.Fatal("readers stopped getting room: a lost wake-up")
		}
		inFlight.Add(-1)
		in.release()
	}
	wg.Wait()
	testkit.True(t, most.Load() <= size, "%d messages held at once, bound %d", most.Load(), size)
	testkit.Equal(t, in.held.Load(), int64(0))
}

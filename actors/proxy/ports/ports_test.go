package ports

import (
	"sync"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestParseRange(t *testing.T) {
	for _, tt := range []struct {
		in   string
		ok   bool
		want Range
	}{
		{"0..0", true, Range{}},
		{"40000..41000", true, Range{40000, 41000}},
		{"40000..40500", false, Range{}}, // too small
		{"80..2000", false, Range{}},     // privileged
		{"50000..40000", false, Range{}},
		{"40000-41000", false, Range{}},
		{"", false, Range{}},
	} {
		r, err := ParseRange(tt.in, MinRangeSize)
		if tt.ok {
			testkit.NoError(t, err)
			testkit.Equal(t, r, tt.want)
		} else {
			testkit.ErrorIs(t, err, ErrRange)
		}
	}
}

func TestAllocatorStaysInItsRange(t *testing.T) {
	r := Range{Low: 41000, High: 42999}
	ports, err := NewAllocator("127.0.0.1", r, 0).Allocate(5)
	testkit.NoError(t, err)
	seen := map[int]bool{}
	for _, p := range ports {
		testkit.True(t, p >= r.Low && p <= r.High, "port %d outside %s", p, r)
		testkit.True(t, !seen[p], "port %d twice", p)
		seen[p] = true
	}
}

func TestAllocatorNeverHandsOutAPortTwice(t *testing.T) {
	low, high := testkit.PortRange("ports")
	a := NewAllocator("127.0.0.1", Range{Low: low, High: high}, time.Minute)
	var mu sync.Mutex
	seen := make(map[int]bool)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ports, err := a.Allocate(5)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range ports {
				if seen[p] {
					t.Errorf("port %d handed out twice", p)
				}
				seen[p] = true
			}
		}()
	}
	wg.Wait()
	testkit.Equal(t, len(seen), 200)
	// Released ports may come back; held ones may not.
	a.Release(1)
	testkit.Equal(t, len(a.held), 200)
}

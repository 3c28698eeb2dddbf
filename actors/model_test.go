package actors

import (
	"fmt"
	"slices"
	"testing"
)

// A list once taken stays as it was whatever the gateway actor adds or
// removes after, and lookups follow every change.
func TestRegistrySnapshotsStayWhole(t *testing.T) {
	var r registry
	ids := func(l []*kernelHandle) []string {
		var out []string
		for _, h := range l {
			out = append(out, h.id)
		}
		return out
	}
	for i := range 5 {
		r.add(newKernelHandle(fmt.Sprint("k", i), "python3", "u", 1))
	}
	before := r.list()
	r.remove("k1")
	r.add(newKernelHandle("k5", "python3", "u", 1))
	r.add(newKernelHandle("k6", "python3", "u", 1))
	r.remove("k9") // not there: nothing changes

	if got, want := ids(before), []string{"k0", "k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("an older list changed to %v, want %v", got, want)
	}
	if got, want := ids(r.list()), []string{"k0", "k2", "k3", "k4", "k5", "k6"}; !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	if _, ok := r.get("k1"); ok {
		t.Fatal("a removed kernel is still found")
	}
	if h, ok := r.get("k6"); !ok || h.id != "k6" {
		t.Fatalf("get(k6) = %v, %v", h, ok)
	}
}

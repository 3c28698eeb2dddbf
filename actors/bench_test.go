package actors

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkListKernels1000 measures what GET /api/kernels costs the gateway
// with 1,000 kernels registered: reading the published snapshot and every
// kernel's atomics, and encoding the JSON body. The kernels are synthetic
// registry entries (1,000 real kernels do not fit this machine); the HTTP
// round trip on top is measured by the bench harness.
func BenchmarkListKernels1000(b *testing.B) {
	g := &Gateway{}
	reg := emptyRegistry
	for i := range 1000 {
		h := newKernelHandle(uuid.NewString(), "python3", fmt.Sprint("user", i%50), 1)
		h.connections.Store(int32(i % 3))
		reg = reg.with(h)
	}
	g.snapshot.Store(reg)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := json.Marshal(g.Kernels()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

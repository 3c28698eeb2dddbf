package http

import (
	"context"
	"os"
	"testing"

	"github.com/kernelgate/kernelgate/bench/synthkernel"
)

// TestMain lets the test binary double as the synthetic kernel: the
// "synthetic" kernelspec of the harness runs `<test binary> synth-kernel -f
// <connection file>`.
func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "synth-kernel" {
		if err := synthkernel.Run(context.Background(), os.Args[3]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

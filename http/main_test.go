package http

import (
	"os"
	"testing"

	"github.com/kernelgate/kernelgate/bench/synthkernel"
)

// TestMain lets the test binary double as the synthetic kernel: the
// "synthetic" kernelspec of the harness runs `<test binary> synth-kernel -f
// <connection file>`.
func TestMain(m *testing.M) {
	synthkernel.ServeIfAsked()
	os.Exit(m.Run())
}

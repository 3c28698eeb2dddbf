package http

import (
	"os"
	"testing"

	"github.com/kernelgate/kernelgate/bench/synthkernel"
	"github.com/kernelgate/kernelgate/launcher"
)

// TestMain lets the test binary double as the synthetic kernel (the
// "synthetic" kernelspec of the harness runs `<test binary> synth-kernel -f
// <connection file>`) and as the remote launcher (`<test binary> launch`).
func TestMain(m *testing.M) {
	synthkernel.ServeIfAsked()
	launcher.RunIfAsked()
	os.Exit(m.Run())
}

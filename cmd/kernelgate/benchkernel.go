package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/kernelgate/kernelgate/bench/synthkernel"
)

func runBenchKernel(args []string, _, stderr io.Writer) int {
	s := newSettings("bench-kernel", stderr)
	var connFile string
	s.String(&connFile, "f", "", "the kernel's connection file", "KERNELGATE_CONNECTION_FILE")
	if code, ok := s.load(args); !ok {
		return code
	}
	if connFile == "" {
		fmt.Fprintln(stderr, "kernelgate bench-kernel: -f <connection file> is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := synthkernel.Run(ctx, connFile); err != nil {
		fmt.Fprintln(stderr, "kernelgate bench-kernel:", err)
		return 1
	}
	return 0
}

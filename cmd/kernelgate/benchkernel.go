package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/signal"
	"syscall"

	"github.com/kernelgate/kernelgate/bench/farm"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
)

// benchKernelConfig is what `kernelgate bench-kernel` takes.
type benchKernelConfig struct {
	connFile, farmAddr, firstIP string
	maxKernels                  int
}

func benchKernelSettings(c *benchKernelConfig, stderr io.Writer) *settings {
	s := newSettings("bench-kernel", stderr)
	s.String(&c.connFile, "f", "", "the kernel's connection file", "KERNELGATE_CONNECTION_FILE")
	s.String(&c.farmAddr, "farm", "", "run a kernel farm instead: many synthetic kernels in this process, launched by gateways asking at this host:port (process proxy \"farm\")", "KERNELGATE_FARM")
	s.String(&c.firstIP, "farm-first-ip", "127.64.0.1", "farm: the first kernel address; each kernel gets a loopback address of its own from there", "KERNELGATE_FARM_FIRST_IP")
	s.Int(&c.maxKernels, "farm-max-kernels", 100000, "farm: most kernels alive at once", "KERNELGATE_FARM_MAX_KERNELS")
	return s
}

func runBenchKernel(args []string, stdout, stderr io.Writer) int {
	var c benchKernelConfig
	if code, ok := benchKernelSettings(&c, stderr).load(args); !ok {
		return code
	}
	connFile, farmAddr, firstIP, maxKernels := c.connFile, c.farmAddr, c.firstIP, c.maxKernels
	if farmAddr != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return runFarm(ctx, farm.Options{Addr: farmAddr, FirstIP: net.ParseIP(firstIP), MaxKernels: maxKernels, Log: stderr}, stdout, stderr)
	}
	if connFile == "" {
		fmt.Fprintln(stderr, "kernelgate bench-kernel: -f <connection file> (or --farm host:port) is required")
		return 2
	}
	// SIGINT interrupts the kernel (synthkernel.Run), as it does a kernel process.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := synthkernel.Run(ctx, connFile); err != nil {
		fmt.Fprintln(stderr, "kernelgate bench-kernel:", err)
		return 1
	}
	return 0
}

// runFarm serves a kernel farm until ctx ends.
func runFarm(ctx context.Context, o farm.Options, stdout, stderr io.Writer) int {
	if o.FirstIP == nil {
		fmt.Fprintln(stderr, "kernelgate bench-kernel: --farm-first-ip is not an IP address")
		return 2
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(stderr, "kernelgate bench-kernel:", err)
	}
	f, err := farm.Start(o)
	if err != nil {
		fmt.Fprintln(stderr, "kernelgate bench-kernel:", err)
		return 1
	}
	fmt.Fprintf(stdout, "kernelgate farm is available at %s\n", f.Addr())
	<-ctx.Done()
	f.Close()
	return 0
}

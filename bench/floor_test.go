package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// floorRole is the environment variable that makes this test binary one of
// BenchmarkRelayFloor's processes: "echo", or "relay" to the address in
// floorTarget.
const (
	floorRole   = "KERNELGATE_FLOOR_ROLE"
	floorTarget = "KERNELGATE_FLOOR_TARGET"
)

// serveFloorIfAsked runs this process as an echo server or a relay when
// floorRole says so: it prints its address, serves until its stdin closes
// (its parent is gone), then exits.
func serveFloorIfAsked() {
	role := os.Getenv(floorRole)
	if role == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		if role == "echo" {
			go pass(c, c)
			continue
		}
		u, err := net.Dial("tcp", os.Getenv(floorTarget))
		if err != nil {
			c.Close()
			continue
		}
		go pass(u, c)
		go pass(c, u)
	}
}

// pass writes what it reads from src to dst, a read and a write at a time,
// as a gateway does (io.Copy between two TCP connections would splice,
// with more system calls a message).
func pass(dst io.Writer, src io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// BenchmarkRelayFloor measures what one more process on the path of a
// round trip costs on this machine, whatever that process does: 600 bytes
// (an execute request's size) to an echo process and back, directly and
// through a relay process that only copies bytes (a goroutine each way). A
// gateway is such a process, so relay's p50 minus direct's is the floor
// under the round trip any gateway adds here; `make bench`'s rtt is read
// against it (docs/benchmarks.md). It reports p50 and p90 in µs.
func BenchmarkRelayFloor(b *testing.B) {
	echo := floorProcess(b, "echo", "")
	relay := floorProcess(b, "relay", echo)
	for _, tc := range []struct{ name, addr string }{{"direct", echo}, {"relay", relay}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 600)
			var rtts []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(t0))
			}
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*9/10].Microseconds()), "p90-µs")
		})
	}
}

// floorProcess starts this test binary as role and returns its address; it
// ends with the benchmark.
func floorProcess(b *testing.B, role, target string) string {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorRole+"="+role, floorTarget+"="+target)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s process: %v", role, err)
	}
	return addr[:len(addr)-1]
}

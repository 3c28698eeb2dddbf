// Command kernelgate is the Jupyter kernel gateway: one binary whose
// subcommands serve kernels, load-test gateways and report its version.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/kernelgate/kernelgate/launcher"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the gateway", runServe},
		{"bench", "load-test a gateway (or 'bench compare' saved reports)", runBench},
		{"bench-kernel", "run the synthetic benchmark kernel (-f <connection file>), or a farm of them (--farm host:port)", runBenchKernel},
		{"launch", "start one kernel on this host for a remote gateway (EG's launcher protocol)", runLaunch},
		{"version", "print the version and exit", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kernelgate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "kernelgate: a Jupyter kernel gateway, wire-compatible with Enterprise Gateway.")
	fmt.Fprintln(w, "\nUsage: kernelgate <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'kernelgate <command> --help' for the flags of a command.")
}

func runLaunch(args []string, _, stderr io.Writer) int { return launcher.Main(args, stderr) }

func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: kernelgate version")
		return 2
	}
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(stdout, "kernelgate %s (%s)\n", version, goVersion)
	return 0
}

// Package launcher is `kernelgate launch`: the program a remote host or a
// kernel pod runs to start one kernel for a gateway. It speaks Enterprise
// Gateway's launcher protocol (see actors/proxy/remote), so it and EG's
// Python launcher are interchangeable: it picks the kernel's ports and a
// comm port in the port range, writes the connection file (0600), starts
// the kernel in a process group of its own, sends the encrypted connection
// info to the gateway's response address, serves the comm port (signals for
// the kernel's group, shutdown), and exits with the kernel, removing its
// file.
//
// As a container's entrypoint it needs no arguments: like EG's
// bootstrap-kernel.sh it takes KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY and
// PORT_RANGE from the environment the gateway gives a kernel pod, and the
// kernel's command from KERNEL_LANGUAGE; it binds the pod's address from
// POD_IP (the downward API's status.podIP) when that is set.
package launcher

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/zmq"
)

// Options is one launch.
type Options struct {
	KernelID        string
	ResponseAddress string // ip:port; empty starts the kernel without calling back
	PublicKey       string
	PortRange       ports.Range
	// IP is where the kernel and the comm port listen; empty means the
	// address this host was reached at over SSH ($SSH_CONNECTION), else
	// all interfaces as EG's launchers do.
	IP string
	// Argv is the kernel's command; {connection_file} is replaced.
	Argv []string
	// ShutdownGrace is how long a kernel may take to exit after the
	// gateway's shutdown request before its group is killed.
	ShutdownGrace time.Duration
	Stderr        io.Writer
}

// Main parses a command line (EG's flag names, the deprecated
// --RemoteProcessProxy.* forms too, then `--` and the kernel's argv) and
// runs the launch; it returns the exit status.
func Main(args []string, stderr io.Writer) int {
	o, err := parse(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kernelgate launch:", err)
		return 2
	}
	code, err := Run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, "kernelgate launch:", err)
		return 1
	}
	return code
}

// parse reads a command line; what it lacks comes from the environment
// (getenv) a kernel pod gets: KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY,
// PORT_RANGE, POD_IP, and KERNEL_LANGUAGE for the kernel's command.
func parse(args []string, getenv func(string) string, stderr io.Writer) (Options, error) {
	o := Options{Stderr: stderr, ShutdownGrace: 10 * time.Second}
	portRange := cmp.Or(getenv("PORT_RANGE"), "0..0")
	fs := flagSet(&o, &portRange, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.Argv = fs.Args()
	if o.KernelID == "" || o.PublicKey == "" {
		return o, errors.New("--kernel-id and --public-key (or KERNEL_ID and PUBLIC_KEY) are required")
	}
	if len(o.Argv) == 0 {
		argv, ok := kernelArgv[strings.ToLower(getenv("KERNEL_LANGUAGE"))]
		if !ok {
			return o, fmt.Errorf("no kernel command after --, and none known for KERNEL_LANGUAGE %q", getenv("KERNEL_LANGUAGE"))
		}
		o.Argv = argv
	}
	minSize := ports.MinRangeSize
	for _, env := range []string{"MIN_PORT_RANGE_SIZE", "EG_MIN_PORT_RANGE_SIZE"} {
		if n, err := strconv.Atoi(getenv(env)); err == nil {
			minSize = n
			break
		}
	}
	var err error
	o.PortRange, err = ports.ParseRange(portRange, minSize)
	return o, err
}

// flags are the launcher's flags: name, the pod variable it defaults to,
// and its meaning. The --RemoteProcessProxy.<name> forms of EG's launchers
// are accepted for the first four.
var flags = []Flag{
	{"kernel-id", "KERNEL_ID", "the kernel's id (required)"},
	{"response-address", "RESPONSE_ADDRESS", "the gateway's response address, ip:port; empty = start the kernel without calling back"},
	{"public-key", "PUBLIC_KEY", "the gateway's public key, base64 DER (required)"},
	{"port-range", "PORT_RANGE", "ports for the kernel and the comm port, L..U (0..0: any; else at least MIN_PORT_RANGE_SIZE or EG_MIN_PORT_RANGE_SIZE ports, default 1000)"},
	{"ip", "POD_IP", "address to listen on (default: the one this host was reached at over SSH, else 0.0.0.0)"},
}

// Flag documents one flag of `kernelgate launch`.
type Flag struct {
	Name, Env, Usage string
}

// Flags lists the flags of `kernelgate launch`, for the documentation.
func Flags() []Flag { return slices.Clone(flags) }

// KernelLanguages lists the KERNEL_LANGUAGE values that pick a kernel
// command when none is given, with that command.
func KernelLanguages() map[string][]string { return maps.Clone(kernelArgv) }

func flagSet(o *Options, portRange *string, getenv func(string) string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kernelgate launch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kernelgate launch --kernel-id ID --response-address IP:PORT --public-key KEY [--port-range L..U] [--ip IP] [-- KERNEL ARGV (with {connection_file})]")
		fmt.Fprintln(stderr, "Each flag defaults to its variable of a kernel pod's environment (KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY, PORT_RANGE, POD_IP); without a kernel argv, KERNEL_LANGUAGE picks one.")
		fs.PrintDefaults()
	}
	targets := map[string]*string{"kernel-id": &o.KernelID, "response-address": &o.ResponseAddress,
		"public-key": &o.PublicKey, "port-range": portRange, "ip": &o.IP}
	for _, f := range flags {
		p := targets[f.Name]
		def := *p
		if f.Name != "port-range" {
			def = getenv(f.Env)
		}
		fs.StringVar(p, f.Name, def, f.Usage)
		if f.Name != "ip" {
			fs.StringVar(p, "RemoteProcessProxy."+f.Name, def, f.Usage)
		}
	}
	return fs
}

// kernelArgv is the kernel's command by KERNEL_LANGUAGE when the command
// line gives none, as EG's bootstrap-kernel.sh picks a launcher.
var kernelArgv = map[string][]string{
	"python": {"python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"},
}

// Run launches the kernel and returns its exit status once it has ended.
func Run(ctx context.Context, o Options) (int, error) {
	ip := o.IP
	if ip == "" {
		ip = sshServerIP()
	}
	comm, err := o.PortRange.Listen(ip)
	if err != nil {
		return 0, fmt.Errorf("comm port: %w", err)
	}
	defer comm.Close()
	ci, err := ports.NewAllocator(ip, o.PortRange, 0).ConnectionInfo("")
	if err != nil {
		return 0, fmt.Errorf("kernel ports: %w", err)
	}
	f, err := os.CreateTemp("", "kernel-"+o.KernelID+"_*.json") // 0600
	if err != nil {
		return 0, fmt.Errorf("connection file: %w", err)
	}
	f.Close()
	connFile := f.Name()
	defer os.Remove(connFile)
	if err := zmq.WriteConnectionFile(connFile, ci); err != nil {
		return 0, err
	}

	argv := make([]string, len(o.Argv))
	for i, a := range o.Argv {
		argv[i] = strings.ReplaceAll(a, "{connection_file}", connFile)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	// Signals for the launcher (a kill over SSH, a hangup) go to the
	// kernel's group too, so the two end together; a SIGKILL, which cannot
	// be forwarded, ends the kernel's process through Pdeathsig (in a pod
	// the container's end would take it along, on an SSH host nothing
	// would). Pdeathsig reaches that process only: a kernel behind a
	// wrapper script loses the wrapper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that forked ends, not the
		// launcher: this goroutine keeps its thread, locked, until the
		// kernel is waited for.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	killGroup := func(sig syscall.Signal) { syscall.Kill(-pid, sig) }
	logf(o.Stderr, "kernel %s started (pid %d) on %s, comm port %d", o.KernelID, pid, ip, comm.Addr().(*net.TCPAddr).Port)

	if o.ResponseAddress != "" {
		p := remote.Payload{ConnectionInfo: ci, KernelID: o.KernelID, PID: remote.Int(pid), PGID: remote.Int(pid),
			CommPort: remote.Int(comm.Addr().(*net.TCPAddr).Port)}
		if err := remote.CallBack(ctx, o.ResponseAddress, o.PublicKey, p); err != nil {
			killGroup(syscall.SIGKILL)
			<-exited
			return 0, err
		}
	}

	shutdown := make(chan struct{})
	go remote.ServeComm(comm, remote.CommHandler{
		Signal: func(sig syscall.Signal) {
			if err := syscall.Kill(-pid, sig); err != nil {
				logf(o.Stderr, "signal %d: %v", sig, err)
			}
		},
		Shutdown: func() { close(shutdown) },
		Ignored:  func(err error) { logf(o.Stderr, "comm request ignored: %v", err) },
	})
	var grace <-chan time.Time
	for {
		select {
		case <-exited:
			comm.Close() // the gateway's next poll is refused: the kernel is gone
			code := cmd.ProcessState.ExitCode()
			killGroup(syscall.SIGKILL) // whatever the kernel left behind
			logf(o.Stderr, "kernel %s exited (%s)", o.KernelID, cmd.ProcessState)
			return max(code, 0), nil
		case s := <-sigs:
			killGroup(s.(syscall.Signal))
		case <-shutdown:
			shutdown = nil
			grace = time.After(o.ShutdownGrace)
		case <-grace:
			logf(o.Stderr, "kernel %s still running %v after the gateway's shutdown; killing it", o.KernelID, o.ShutdownGrace)
			killGroup(syscall.SIGKILL)
		case <-ctx.Done():
			killGroup(syscall.SIGKILL)
			ctx = context.Background()
		}
	}
}

// sshServerIP is the local address of the SSH connection this process was
// started through, or 0.0.0.0.
func sshServerIP() string {
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 && net.ParseIP(f[2]) != nil {
		return f[2]
	}
	return "0.0.0.0"
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s kernelgate launch: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// RunIfAsked runs a launch and exits when the process was started as
// `<binary> launch ...`: a test binary then serves as the launcher its
// tests put in a kernelspec, as the kernelgate binary does.
func RunIfAsked() {
	if len(os.Args) > 1 && os.Args[1] == "launch" {
		os.Exit(Main(os.Args[2:], os.Stderr))
	}
}

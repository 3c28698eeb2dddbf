// Package ssh is the distributed process proxy, Enterprise Gateway's
// DistributedProcessProxy: it starts each kernel on one of a list of hosts
// over SSH, through a launcher (EG's, or `kernelgate launch`) that reports
// the kernel's connection info to the gateway's response listener, and
// then reaches the kernel through the launcher's comm port.
package ssh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// ClassNames select this provisioner: ours and Enterprise Gateway's.
var ClassNames = []string{
	"ssh", "distributed",
	"enterprise_gateway.services.processproxies.distributed.DistributedProcessProxy",
}

// Config configures the distributed proxy. Settings keep EG's names.
type Config struct {
	// Hosts are tried when a kernelspec names none in
	// metadata.process_proxy.config.remote_hosts (EG_REMOTE_HOSTS).
	Hosts []string
	// LoadBalancing is RoundRobin or LeastConnection
	// (EG_LOAD_BALANCING_ALGORITHM).
	LoadBalancing string
	// User and Port are the SSH login (EG_REMOTE_USER, EG_SSH_PORT).
	User string
	Port int
	// KeyFiles are private keys to log in with; missing default ones are
	// skipped. Password is used only when set (EG_REMOTE_PWD).
	KeyFiles []string
	Password string
	// KnownHosts verifies host keys; InsecureHostKeys turns that off.
	KnownHosts       string
	InsecureHostKeys bool
	// CommandTimeout bounds each SSH command (EG's 30 s).
	CommandTimeout time.Duration
	// CommTimeout bounds each comm-port request (EG_SOCKET_TIMEOUT).
	CommTimeout time.Duration
	// PortRange is `{port_range}` unless the kernelspec sets port_range
	// (EG_PORT_RANGE); MinPortRangeSize validates both.
	PortRange        string
	MinPortRangeSize int
	// LogDir holds each kernel's output on its host, kernel-<id>.log
	// (EG_KERNEL_LOG_DIR); it is copied into the gateway's log when the
	// kernel ends.
	LogDir   string
	Listener *remote.Listener
	Logger   zerolog.Logger
}

// Provisioner launches kernels on remote hosts over SSH.
type Provisioner struct {
	cfg     Config
	hosts   *balancer
	clients *clients
}

var (
	_ proxy.Provisioner = (*Provisioner)(nil)
	_ proxy.Recoverer   = (*Provisioner)(nil)
)

// New checks the configuration and prepares the SSH client; no host is
// contacted before the first launch.
func New(c Config) (*Provisioner, error) {
	b, err := newBalancer(c.LoadBalancing)
	if err != nil {
		return nil, err
	}
	if _, err := ports.ParseRange(c.PortRange, c.MinPortRangeSize); err != nil {
		return nil, err
	}
	if c.Listener == nil {
		return nil, errors.New("ssh provisioner: no response listener")
	}
	cc, err := clientConfig(c, c.Logger)
	if err != nil {
		return nil, err
	}
	return &Provisioner{cfg: c, hosts: b, clients: &clients{config: cc, port: c.Port, hosts: make(map[string]*hostConn)}}, nil
}

// Close ends the kept SSH connections.
func (p *Provisioner) Close() { p.clients.close() }

// Load is the number of kernels each host runs.
func (p *Provisioner) Load() map[string]int { return p.hosts.Load() }

// processInfo finds a remote kernel again.
type processInfo struct {
	Host     string `json:"host"`
	IP       string `json:"ip"`
	CommPort int    `json:"comm_port"`
	PID      int    `json:"pid"`
	PGID     int    `json:"pgid"`
	Launcher int    `json:"launcher_pid"`
	LogFile  string `json:"log_file"`
}

// Launch starts the kernel on the first host that takes it and waits for
// its launcher's callback.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	hosts, err := p.candidates(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	w, args, err := p.cfg.Listener.Prepare(req, p.cfg.PortRange, p.cfg.MinPortRangeSize)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	argv := args.Argv(req.Spec.Argv)
	info := processInfo{LogFile: path.Join(p.cfg.LogDir, "kernel-"+req.KernelID+".log")}
	cmd := launchCommand(req.Env, argv, info.LogFile)
	var errs []error
	for _, host := range hosts {
		if info.Launcher, err = p.start(ctx, host, cmd); err == nil {
			info.Host = host
			break
		}
		req.Logger.Warn().Err(err).Str("host", host).Msg("remote kernel launch failed on this host")
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if info.Host == "" {
		return nil, fmt.Errorf("%w: no host started the kernel: %w", proxy.ErrLaunch, errors.Join(errs...))
	}
	p.hosts.acquire(info.Host)
	log := req.Logger.With().Str("host", info.Host).Int("launcher_pid", info.Launcher).Logger()
	log.Info().Msg("remote kernel launched; waiting for its connection info")

	fail := func(err error) (proxy.Kernel, error) {
		p.clear(req.KernelID, info, log)
		return nil, err
	}
	payload, err := w.Wait(ctx)
	if err != nil {
		return fail(fmt.Errorf("%w: KernelID: '%s' launch timeout due to: waited too long to get connection info from %s (its output is in the gateway's log): %w",
			proxy.ErrLaunch, req.KernelID, info.Host, err))
	}
	if info.IP, err = resolve(ctx, info.Host); err != nil {
		return fail(fmt.Errorf("%w: %w", proxy.ErrLaunch, err))
	}
	info.CommPort, info.PID, info.PGID = int(payload.CommPort), int(payload.PID), int(payload.PGID)
	k := p.kernel(req.KernelID, payload, info, log)
	// The comm port confirms the start, as EG's liveness poll would.
	if err := k.Poll(); err != nil {
		return fail(fmt.Errorf("%w: the launcher on %s reported its kernel but its comm port does not answer: %w", proxy.ErrLaunch, info.Host, err))
	}
	log.Info().Int("pid", info.PID).Int("comm_port", info.CommPort).Msg("remote kernel reported its connection info")
	return k, nil
}

// Recover takes back a remote kernel after a gateway restart: its launcher
// must still answer on the comm port.
func (p *Provisioner) Recover(_ context.Context, req proxy.RecoverRequest) (proxy.Kernel, error) {
	var info processInfo
	if err := json.Unmarshal(req.ProcessInfo, &info); err != nil || info.Host == "" || info.CommPort == 0 {
		return nil, fmt.Errorf("%w: unreadable process info", proxy.ErrGone)
	}
	payload := remote.Payload{ConnectionInfo: req.Connection, KernelID: req.KernelID, CommPort: remote.Int(info.CommPort)}
	p.hosts.acquire(info.Host)
	log := req.Logger.With().Str("host", info.Host).Logger()
	k := p.kernel(req.KernelID, payload, info, log)
	if err := k.Poll(); err != nil {
		k.Cleanup()
		return nil, fmt.Errorf("%w: %w", proxy.ErrGone, err)
	}
	log.Info().Msg("remote kernel recovered")
	return k, nil
}

// kernel wraps a reported kernel with this host's SSH fallbacks.
func (p *Provisioner) kernel(id string, payload remote.Payload, info processInfo, log zerolog.Logger) *remote.Kernel {
	raw, _ := json.Marshal(info) // plain fields: cannot fail
	return remote.NewKernel(payload, info.IP, remote.KernelOptions{
		CommTimeout: p.cfg.CommTimeout,
		ProcessInfo: raw,
		Fallback: func(sig syscall.Signal) error {
			if info.PGID <= 0 {
				return errors.New("no process group to signal over ssh")
			}
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CommandTimeout)
			defer cancel()
			_, err := p.clients.run(ctx, info.Host, fmt.Sprintf("kill -%d -- -%d", int(sig), info.PGID))
			return err
		},
		Cleanup: func() error { return p.clear(id, info, log) },
	})
}

// start runs the launch command on host and returns the launcher's pid.
func (p *Provisioner) start(ctx context.Context, host, cmd string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	defer cancel()
	out, err := p.clients.run(ctx, host, cmd)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("failure occurred starting kernel on %s: the launch printed %q, not a pid", host, bytes.TrimSpace(out))
	}
	return pid, nil
}

// clear is the last word on a kernel's host: every process still carrying
// the kernel's id in its environment is killed, and the kernel's output is
// copied into the gateway's log and removed.
func (p *Provisioner) clear(id string, info processInfo, log zerolog.Logger) error {
	defer p.hosts.release(info.Host)
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CommandTimeout)
	defer cancel()
	log.Debug().Msg("clearing the kernel's host")
	out, err := p.clients.run(ctx, info.Host, clearCommand(id, info.LogFile))
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" {
			log.Info().Str("output", line).Msg("remote kernel output")
		}
	}
	if err != nil {
		return fmt.Errorf("clearing %s: %w", info.Host, err)
	}
	return nil
}

// candidates are the hosts to try in order: KERNEL_REMOTE_HOST alone if the
// request names one, else the balancer's choice then the others.
func (p *Provisioner) candidates(req proxy.LaunchRequest) ([]string, error) {
	if h := strings.TrimSpace(req.Env["KERNEL_REMOTE_HOST"]); h != "" {
		return []string{h}, nil
	}
	hosts := p.cfg.Hosts
	if s, ok := req.Spec.ProcessProxy.Config["remote_hosts"].(string); ok && strings.TrimSpace(s) != "" {
		hosts = kernelspecs.SplitList(s)
	}
	if len(hosts) == 0 {
		return nil, errors.New("no remote hosts configured (EG_REMOTE_HOSTS or the kernelspec's remote_hosts)")
	}
	return p.hosts.order(hosts), nil
}

// resolve returns host's IPv4 address (ZMQ dials addresses, not names).
func resolve(ctx context.Context, host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("resolve %s: %w", host, err)
	}
	return ips[0].String(), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// launchCommand is the shell command that starts a launcher detached from
// the SSH session, in a session of its own, its output appended to logFile,
// and prints its pid.
func launchCommand(env map[string]string, argv []string, logFile string) string {
	names := make([]string, 0, len(env))
	for k := range env {
		if envName.MatchString(k) && !proxy.IsHostVariable(k) && k != "EG_REMOTE_PWD" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "export %s=%s; ", k, quote(env[k]))
	}
	fmt.Fprintf(&b, "mkdir -p %s; ", quote(path.Dir(logFile)))
	b.WriteString("setsid nohup")
	for _, a := range argv {
		b.WriteString(" " + quote(a))
	}
	fmt.Fprintf(&b, " >> %s 2>&1 < /dev/null & echo $!", quote(logFile))
	return b.String()
}

// clearCommand kills what is left of kernel id on its host (found by the
// KERNEL_ID in each process's environment, so a recycled pid is never
// hit), prints the end of its log and removes the log.
func clearCommand(id, logFile string) string {
	return fmt.Sprintf(`for f in $(grep -lsxzF %s /proc/[0-9]*/environ); do p=${f#/proc/}; kill -9 "${p%%/environ}" 2>/dev/null; done; tail -c 65536 %s 2>/dev/null; rm -f %s`,
		quote("KERNEL_ID="+id), quote(logFile), quote(logFile))
}

// quote makes s one word for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package main

import (
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/farm"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/actors/proxy/ssh"
	"github.com/rs/zerolog"
)

// remoteConfig is the settings of remote kernels: the launcher protocol's
// response listener and comm port, and the SSH distributed proxy.
type remoteConfig struct {
	ResponseIP          string
	ResponsePort        int
	ResponsePortRetries int
	ResponseAddrAny     bool
	ProhibitedIPs       []string
	KeyBits             int
	SocketTimeout       time.Duration
	PortRange           string
	MinPortRangeSize    int
	LivenessInterval    time.Duration
	PollInterval        time.Duration

	Hosts            []string
	LoadBalancing    string
	User             string
	Password         string
	SSHPort          int
	KeyFiles         []string
	KnownHosts       string
	InsecureHostKeys bool
	CommandTimeout   time.Duration
	LogDir           string
}

func remoteSettings(s *settings, c *remoteConfig) {
	home, _ := os.UserHomeDir()
	sshDir := filepath.Join(home, ".ssh")
	username := ""
	if u, err := user.Current(); err == nil {
		username = u.Username
	}
	s.String(&c.ResponseIP, "response-ip", "", "address remote launchers call back to, bound by the response listener; empty = the first non-loopback address", "EG_RESPONSE_IP")
	s.Int(&c.ResponsePort, "response-port", 8877, "port of the response listener (started with the first remote kernel)", "EG_RESPONSE_PORT")
	s.Int(&c.ResponsePortRetries, "response-port-retries", 10, "further response ports to try when the port is taken", "EG_RESPONSE_PORT_RETRIES")
	s.Bool(&c.ResponseAddrAny, "response-addr-any", false, "bind the response listener on all interfaces (the advertised address stays --response-ip)", "EG_RESPONSE_ADDR_ANY")
	s.List(&c.ProhibitedIPs, "prohibited-local-ips", nil, "comma list of regular expressions of local addresses never picked as the response address", "EG_PROHIBITED_LOCAL_IPS")
	s.Int(&c.KeyBits, "response-key-bits", 2048, "size of the RSA key launchers encrypt their callback with", "KERNELGATE_RESPONSE_KEY_BITS")
	s.Seconds(&c.SocketTimeout, "socket-timeout", 5*time.Second, "seconds a comm-port request to a launcher may take to connect and send (EG's code uses 0.005, too tight off a LAN)", "EG_SOCKET_TIMEOUT")
	s.String(&c.PortRange, "port-range", "0..0", "ports remote launchers pick for their kernels, L..U (0..0 = any); a kernelspec's port_range overrides", "EG_PORT_RANGE")
	s.Int(&c.MinPortRangeSize, "min-port-range-size", ports.MinRangeSize, "fewest ports a non-zero port range may hold", "EG_MIN_PORT_RANGE_SIZE")
	s.Seconds(&c.LivenessInterval, "liveness-interval", 3*time.Second, "seconds a remote kernel's heartbeat echoes may be late before its launcher is polled (between polls with heartbeats off)", "KERNELGATE_LIVENESS_INTERVAL")
	s.Seconds(&c.PollInterval, "poll-interval", 500*time.Millisecond, "seconds between polls of a remote kernel being stopped or restarted", "EG_POLL_INTERVAL")
	s.List(&c.Hosts, "remote-hosts", []string{"localhost"}, "comma list of hosts the distributed (SSH) proxy launches kernels on; a kernelspec's remote_hosts overrides", "EG_REMOTE_HOSTS")
	s.String(&c.LoadBalancing, "load-balancing-algorithm", ssh.RoundRobin, "how the distributed proxy picks a host: round-robin or least-connection", "EG_LOAD_BALANCING_ALGORITHM")
	s.String(&c.User, "remote-user", username, "SSH user on the remote hosts", "EG_REMOTE_USER")
	s.String(&c.Password, "remote-pwd", "", "SSH password, used only when set (prefer keys; prefer the variable to the flag)", "EG_REMOTE_PWD")
	s.Int(&c.SSHPort, "ssh-port", 22, "SSH port of the remote hosts", "EG_SSH_PORT")
	s.List(&c.KeyFiles, "ssh-keys", []string{filepath.Join(sshDir, "id_ed25519"), filepath.Join(sshDir, "id_ecdsa"), filepath.Join(sshDir, "id_rsa")},
		"comma list of private key files to log in with (missing default ones are skipped)", "KERNELGATE_SSH_KEYS")
	s.String(&c.KnownHosts, "ssh-known-hosts", filepath.Join(sshDir, "known_hosts"), "known_hosts file the remote hosts' keys are checked against", "KERNELGATE_SSH_KNOWN_HOSTS")
	s.Bool(&c.InsecureHostKeys, "ssh-insecure-host-keys", false, "do not check remote host keys (logged as a warning at start)", "KERNELGATE_SSH_INSECURE_HOST_KEYS")
	s.Seconds(&c.CommandTimeout, "ssh-timeout", 30*time.Second, "seconds an SSH connection or command may take", "KERNELGATE_SSH_TIMEOUT")
	s.String(&c.LogDir, "kernel-log-dir", "/tmp", "directory on a remote host for its kernels' output (copied into the gateway's log when a kernel ends)", "EG_KERNEL_LOG_DIR")
}

// responseListener is the launchers' response listener, shared by the
// remote provisioners; it starts with the first remote kernel.
func responseListener(c remoteConfig, log zerolog.Logger) *remote.Listener {
	return remote.NewListener(remote.ListenerConfig{
		IP: c.ResponseIP, Port: c.ResponsePort, PortRetries: c.ResponsePortRetries, AddrAny: c.ResponseAddrAny,
		ProhibitedIPs: c.ProhibitedIPs, KeyBits: c.KeyBits, Logger: log.With().Str("component", "response-listener").Logger(),
	})
}

// sshProxy registers the distributed (SSH) provisioner; the returned
// function releases what it holds. One that cannot be set up (no SSH key,
// no known_hosts) fails only the launches that ask for it.
func sshProxy(c remoteConfig, listener *remote.Listener, reg *proxy.Registry, log zerolog.Logger) (closeAll func()) {
	p, err := ssh.New(ssh.Config{
		Hosts: c.Hosts, LoadBalancing: c.LoadBalancing, User: c.User, Port: c.SSHPort, KeyFiles: c.KeyFiles,
		Password: c.Password, KnownHosts: c.KnownHosts, InsecureHostKeys: c.InsecureHostKeys,
		CommandTimeout: c.CommandTimeout, CommTimeout: c.SocketTimeout, PortRange: c.PortRange,
		MinPortRangeSize: c.MinPortRangeSize, LogDir: c.LogDir, Listener: listener,
		Logger: log.With().Str("component", "ssh").Logger(),
	})
	if err != nil {
		log.Debug().Err(err).Msg("the distributed (SSH) process proxy is unavailable")
		reg.Register(proxy.Unavailable{Err: err}, ssh.ClassNames...)
		return func() {}
	}
	reg.Register(p, ssh.ClassNames...)
	return p.Close
}

// farmProxy registers the kernel farm's provisioner (kernels hosted by
// `kernelgate bench-kernel --farm`, for scale runs); it opens nothing
// before a kernelspec asks for it.
func farmProxy(c remoteConfig, listener *remote.Listener, reg *proxy.Registry, log zerolog.Logger) (closeAll func()) {
	p, err := farm.New(farm.Config{Listener: listener, CommTimeout: c.SocketTimeout, PortRange: c.PortRange,
		MinPortRangeSize: c.MinPortRangeSize, Logger: log.With().Str("component", "farm").Logger()})
	if err != nil {
		reg.Register(proxy.Unavailable{Err: err}, farm.ClassNames...)
		return func() {}
	}
	reg.Register(p, farm.ClassNames...)
	return p.Close
}

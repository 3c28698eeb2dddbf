package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sessionsPerHost stays under OpenSSH's MaxSessions (10) for the one
// connection kept to each host.
const sessionsPerHost = 8

// clients keeps one SSH connection per host and runs commands on it, a
// session each.
type clients struct {
	config *ssh.ClientConfig
	port   int

	mu    sync.Mutex
	hosts map[string]*hostConn
}

type hostConn struct {
	mu       sync.Mutex // guards client
	client   *ssh.Client
	sessions chan struct{}
}

// clientConfig builds the SSH client configuration: key files (and a
// password if one is set), host keys checked against known_hosts unless
// checking is turned off, which is logged loudly.
func clientConfig(c Config, log zerolog.Logger) (*ssh.ClientConfig, error) {
	var signers []ssh.Signer
	for _, f := range c.KeyFiles {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && len(c.KeyFiles) > 1 {
			continue // one of the default key names
		}
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	var auth []ssh.AuthMethod
	if len(signers) > 0 {
		auth = append(auth, ssh.PublicKeys(signers...))
	}
	if c.Password != "" {
		auth = append(auth, ssh.Password(c.Password))
	}
	if len(auth) == 0 {
		return nil, fmt.Errorf("ssh: no usable key among %s and no password", strings.Join(c.KeyFiles, ", "))
	}
	var hostKeys ssh.HostKeyCallback
	if c.InsecureHostKeys {
		log.Warn().Msg("SSH HOST KEYS ARE NOT CHECKED (--ssh-insecure-host-keys): anyone who can redirect traffic to a remote host can run kernels as that host and read their code")
		hostKeys = ssh.InsecureIgnoreHostKey()
	} else {
		var err error
		if hostKeys, err = knownhosts.New(c.KnownHosts); err != nil {
			return nil, fmt.Errorf("ssh known_hosts: %w", err)
		}
	}
	return &ssh.ClientConfig{User: c.User, Auth: auth, HostKeyCallback: hostKeys, Timeout: c.CommandTimeout}, nil
}

func (c *clients) conn(host string) *hostConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[host]
	if !ok {
		h = &hostConn{sessions: make(chan struct{}, sessionsPerHost)}
		c.hosts[host] = h
	}
	return h
}

// run executes cmd on host and returns its standard output; a failure
// carries its standard error.
func (c *clients) run(ctx context.Context, host, cmd string) ([]byte, error) {
	h := c.conn(host)
	select {
	case h.sessions <- struct{}{}:
		defer func() { <-h.sessions }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s, err := c.session(ctx, h, host)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		err = ctx.Err()
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("ssh %s: %w", host, err)
	}
	return stdout.Bytes(), nil
}

// session opens a session on the host's connection, dialling it first, and
// again once if the kept connection has broken.
func (c *clients) session(ctx context.Context, h *hostConn, host string) (*ssh.Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if h.client == nil {
			cl, err := c.dial(ctx, host)
			if err != nil {
				return nil, err
			}
			h.client = cl
		}
		s, err := h.client.NewSession()
		if err == nil {
			return s, nil
		}
		h.client.Close()
		h.client = nil
		if attempt > 0 {
			return nil, fmt.Errorf("ssh %s: new session: %w", host, err)
		}
	}
}

func (c *clients) dial(ctx context.Context, host string) (*ssh.Client, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(c.port))
	d := net.Dialer{Timeout: c.config.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	// The handshake has the dial's deadline: a host that accepts and then
	// says nothing cannot hold a launch.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, c.config)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// close ends every kept connection.
func (c *clients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		h.mu.Lock()
		if h.client != nil {
			h.client.Close()
			h.client = nil
		}
		h.mu.Unlock()
	}
}

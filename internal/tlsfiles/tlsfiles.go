// Package tlsfiles serves TLS from certificate files that may be replaced
// while the server runs (a renewed certificate, a rotated client CA): they
// are loaded at start, and again whenever they have changed, without a
// restart. It takes Enterprise Gateway's settings (EG_CERTFILE, EG_KEYFILE,
// EG_CLIENT_CA: mutual TLS) and allows TLS 1.2 and 1.3 only.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// DefaultCheckInterval is how often, at most, the files are looked at for a
// change: a stat of each on the first handshake after the interval.
const DefaultCheckInterval = time.Second

// ErrNoClientCAs: the client CA file holds no certificate.
var ErrNoClientCAs = errors.New("no CA certificate in the client CA file")

// Config names the files.
type Config struct {
	// CertFile holds the server's certificate chain (PEM), leaf first.
	CertFile string
	// KeyFile holds its private key (PEM); empty means it is in CertFile.
	KeyFile string
	// ClientCA, when set, holds the CAs client certificates must chain to:
	// every client must then present one (mutual TLS).
	ClientCA string
	// CheckInterval is how often the files are checked for a change
	// (default DefaultCheckInterval).
	CheckInterval time.Duration
	// Logger reports reloads and files that could not be loaded.
	Logger zerolog.Logger
}

// Files is a TLS configuration that follows its files.
type Files struct {
	cfg     Config
	current atomic.Pointer[loaded]
	mu      sync.Mutex // held by the one goroutine checking the files
	checked atomic.Int64
}

// loaded is one generation of the files: what was read and how the files
// were when it was.
type loaded struct {
	tls   *tls.Config
	stamp [3]stamp
}

// stamp tells whether a file changed: a new file renamed into place (how
// Kubernetes updates a mounted secret) has another inode, a file rewritten
// in place another size or modification time.
type stamp struct {
	ino, size int64
	mtime     time.Time
}

// New loads the files; an error means they cannot serve TLS.
func New(cfg Config) (*Files, error) {
	if cfg.CertFile == "" {
		return nil, errors.New("tlsfiles: no certificate file")
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = cfg.CertFile
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	f := &Files{cfg: cfg}
	l, err := f.load()
	if err != nil {
		return nil, err
	}
	f.current.Store(l)
	f.checked.Store(time.Now().UnixNano())
	return f, nil
}

// TLSConfig returns the configuration to serve with: each handshake gets
// the files' latest good generation.
func (f *Files) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.config(), nil
		},
	}
}

// ClientConfig returns the configuration to call the gateway's peers with
// (the other replicas of its group): it presents the files' certificate,
// as their mutual TLS asks, and trusts the system's roots and the client
// CAs, which a group's certificates chain to.
func (f *Files) ClientConfig() (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if f.cfg.ClientCA != "" {
		pem, err := os.ReadFile(f.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tlsfiles: %w", err)
		}
		roots.AppendCertsFromPEM(pem)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &f.config().Certificates[0], nil
		},
	}, nil
}

// config returns the current generation, reloading it first when the check
// interval has passed and the files changed. Only one handshake checks; the
// others go on with what is loaded.
func (f *Files) config() *tls.Config {
	now := time.Now().UnixNano()
	if last := f.checked.Load(); now-last >= int64(f.cfg.CheckInterval) && f.checked.CompareAndSwap(last, now) && f.mu.TryLock() {
		defer f.mu.Unlock()
		f.reloadIfChanged()
	}
	return f.current.Load().tls
}

// reloadIfChanged loads the files again if they changed since they were
// last loaded, and reports whether it did.
func (f *Files) reloadIfChanged() (bool, error) {
	old := f.current.Load()
	if stamps, err := f.stamps(); err == nil && stamps == old.stamp {
		return false, nil
	}
	l, err := f.load()
	if err != nil {
		// Renewals are often written file by file: the certificate and
		// its key may not match for a moment. The old generation serves
		// until both do.
		f.cfg.Logger.Warn().Err(err).Msg("TLS files changed but cannot be loaded; serving the ones loaded before")
		return false, err
	}
	f.current.Store(l)
	f.cfg.Logger.Info().Str("cert_file", f.cfg.CertFile).Time("not_after", l.tls.Certificates[0].Leaf.NotAfter).Msg("TLS files reloaded")
	return true, nil
}

// load reads the files, stamping them first: a change made while they are
// read is then seen at the next check.
func (f *Files) load() (*loaded, error) {
	stamps, err := f.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.cfg.CertFile, f.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsfiles: %s, %s: %w", f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.cfg.ClientCA != "" {
		pem, err := os.ReadFile(f.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tlsfiles: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsfiles: %s: %w", f.cfg.ClientCA, ErrNoClientCAs)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loaded{tls: c, stamp: stamps}, nil
}

func (f *Files) stamps() ([3]stamp, error) {
	var out [3]stamp
	for i, name := range []string{f.cfg.CertFile, f.cfg.KeyFile, f.cfg.ClientCA} {
		if name == "" {
			continue
		}
		st, err := os.Stat(name) // follows symlinks: a swapped target is a change
		if err != nil {
			return out, fmt.Errorf("tlsfiles: %w", err)
		}
		out[i] = stamp{size: st.Size(), mtime: st.ModTime()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			out[i].ino = int64(sys.Ino)
		}
	}
	return out, nil
}

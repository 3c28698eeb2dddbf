package tlsfiles

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testcerts"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// serve accepts TLS connections with cfg on loopback and completes their
// handshakes; it returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	testkit.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with addr and returns the server certificate's name.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// A TLS 1.3 server refuses a client certificate after the client's
	// handshake is done: a read sees it.
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// install puts new files in place as Kubernetes updates a mounted secret:
// each renamed over the old one.
func install(t *testing.T, from, to string) {
	t.Helper()
	testkit.NoError(t, os.Rename(from, to))
}

func TestReloadsChangedFiles(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c, k := ca.Server(t, "first")
	install(t, c, certFile)
	install(t, k, keyFile)
	f, err := New(Config{CertFile: certFile, KeyFile: keyFile, CheckInterval: 10 * time.Millisecond})
	testkit.NoError(t, err)
	addr := serve(t, f.TLSConfig())
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	name := func() string {
		n, err := dial(addr, client)
		testkit.NoError(t, err)
		return n
	}
	testkit.Equal(t, name(), "first")

	// A renewed certificate is served from the next handshake on.
	c, k = ca.Server(t, "second")
	install(t, c, certFile)
	install(t, k, keyFile)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := name(); n != "second" {
			return errors.New("still " + n)
		}
		return nil
	})

	// A certificate whose key has not been written yet is not loaded: the
	// last good pair goes on serving until the key comes.
	c, k = ca.Server(t, "third")
	install(t, c, certFile)
	time.Sleep(50 * time.Millisecond)
	testkit.Equal(t, name(), "second")
	install(t, k, keyFile)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := name(); n != "third" {
			return errors.New("still " + n)
		}
		return nil
	})

	// Files rewritten in place count as changed too.
	c, k = ca.Server(t, "fourth")
	for from, to := range map[string]string{c: certFile, k: keyFile} {
		b, err := os.ReadFile(from)
		testkit.NoError(t, err)
		testkit.NoError(t, os.WriteFile(to, b, 0o600))
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := name(); n != "fourth" {
			return errors.New("still " + n)
		}
		return nil
	})

	// Below TLS 1.2 nothing is served.
	_, err = dial(addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11})
	testkit.True(t, err != nil, "a TLS 1.1 handshake succeeded")
}

func TestMutualTLS(t *testing.T) {
	ca, other := testcerts.NewCA(t, "ca"), testcerts.NewCA(t, "other")
	dir := t.TempDir()
	clientCA := filepath.Join(dir, "client-ca.pem")
	b, err := os.ReadFile(ca.CertFile)
	testkit.NoError(t, err)
	testkit.NoError(t, os.WriteFile(clientCA, b, 0o600))
	certFile, keyFile := ca.Server(t, "server")
	f, err := New(Config{CertFile: certFile, KeyFile: keyFile, ClientCA: clientCA, CheckInterval: 10 * time.Millisecond})
	testkit.NoError(t, err)
	addr := serve(t, f.TLSConfig())
	with := func(certs ...tls.Certificate) error {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			_, err := dial(addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs, MinVersion: v, MaxVersion: v})
			if err != nil {
				return err
			}
		}
		return nil
	}
	testkit.NoError(t, with(ca.ClientCert(t, "alice")))
	testkit.True(t, with() != nil, "a client without a certificate got in")
	testkit.True(t, with(other.ClientCert(t, "mallory")) != nil, "a certificate of another CA got in")

	// The client CA is reloaded too.
	b, err = os.ReadFile(other.CertFile)
	testkit.NoError(t, err)
	testkit.NoError(t, os.WriteFile(clientCA, b, 0o600))
	testkit.Eventually(t, 5*time.Second, func() error { return with(other.ClientCert(t, "bob")) })
	testkit.True(t, with(ca.ClientCert(t, "alice")) != nil, "the replaced CA's certificate still gets in")
}

func TestNewRefusesUnusableFiles(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	certFile, keyFile := ca.Server(t, "server")
	_, otherKey := ca.Server(t, "other")
	noCerts := filepath.Join(t.TempDir(), "empty.pem")
	testkit.NoError(t, os.WriteFile(noCerts, []byte("not a certificate\n"), 0o600))
	for _, tt := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"no certificate", Config{}, nil},
		{"missing file", Config{CertFile: filepath.Join(t.TempDir(), "nope.pem")}, os.ErrNotExist},
		{"key of another certificate", Config{CertFile: certFile, KeyFile: otherKey}, nil},
		{"key missing from the certificate file", Config{CertFile: certFile}, nil},
		{"client CA file without certificates", Config{CertFile: certFile, KeyFile: keyFile, ClientCA: noCerts}, ErrNoClientCAs},
	} {
		_, err := New(tt.cfg)
		testkit.True(t, err != nil && (tt.want == nil || errors.Is(err, tt.want)), "%s: %v", tt.name, err)
	}
	// A certificate and its key in one file, as EG allows.
	both := filepath.Join(t.TempDir(), "both.pem")
	c, _ := os.ReadFile(certFile)
	k, _ := os.ReadFile(keyFile)
	testkit.NoError(t, os.WriteFile(both, append(c, k...), 0o600))
	_, err := New(Config{CertFile: both})
	testkit.NoError(t, err)
}

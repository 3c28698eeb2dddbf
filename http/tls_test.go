package http

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/testcerts"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/tlsfiles"
)

// tlsGateway is a harness serving mutual TLS from files under dir, which
// the test may replace; it returns the harness (speaking TLS with a client
// certificate) and the files' paths.
func tlsGateway(t *testing.T, ca *testcerts.CA) (h *harness, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c, k := ca.Server(t, "gateway-1")
	testkit.NoError(t, os.Rename(c, certFile))
	testkit.NoError(t, os.Rename(k, keyFile))
	files, err := tlsfiles.New(tlsfiles.Config{CertFile: certFile, KeyFile: keyFile, ClientCA: ca.CertFile, CheckInterval: 10 * time.Millisecond})
	testkit.NoError(t, err)
	h = newHarness(t, func(c *Config, _ *actors.Config) { c.TLS, c.AuthToken = files.TLSConfig(), "tls-tok" })
	h.useTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.ClientCert(t, "jupyter-server")}})
	return h, certFile, keyFile
}

// TestTLS: REST and websockets over mutual TLS, TLS 1.2 at least, a
// certificate replaced without a restart.
func TestTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "kernelgate-test")
	h, certFile, keyFile := tlsGateway(t, ca)
	testkit.True(t, strings.HasPrefix(h.url, "https://"), "url %s", h.url)
	h.expect("GET", "/api/kernelspecs", "", 200)
	id := h.startKernel()
	w := h.dialWS(id, "tls", true)
	testkit.Equal(t, w.output("print(6*7)"), "42")

	addr := strings.TrimPrefix(h.url, "https://")
	handshake := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		// A request, so that a refusal after the handshake (TLS 1.3
		// checks the client's certificate then) is seen.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return nil, err
		}
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			return nil, errors.Join(err, errors.New("no answer: "+string(b)))
		}
		st := c.ConnectionState()
		return &st, nil
	}
	client := ca.ClientCert(t, "client")
	st, err := handshake(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}})
	testkit.NoError(t, err)
	testkit.Equal(t, st.Version, uint16(tls.VersionTLS13))
	_, err = handshake(&tls.Config{RootCAs: ca.Pool()})
	testkit.True(t, err != nil, "a client without a certificate was served")
	_, err = handshake(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS11})
	testkit.True(t, err != nil, "TLS 1.1 was served")
	st, err = handshake(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS12})
	testkit.NoError(t, err)
	testkit.Equal(t, st.Version, uint16(tls.VersionTLS12))

	// Plain HTTP on the TLS port gets no API.
	if resp, err := (&nethttp.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/api/kernelspecs"); err == nil {
		resp.Body.Close()
		t.Fatalf("plain HTTP was answered %s", resp.Status)
	}

	// A renewed certificate is served without a restart, while the
	// websocket opened before goes on.
	c, k := ca.Server(t, "gateway-2")
	testkit.NoError(t, os.Rename(c, certFile))
	testkit.NoError(t, os.Rename(k, keyFile))
	testkit.Eventually(t, 5*time.Second, func() error {
		st, err := handshake(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}})
		if err != nil {
			return err
		}
		if cn := st.PeerCertificates[0].Subject.CommonName; cn != "gateway-2" {
			return errors.New("still " + cn)
		}
		return nil
	})
	testkit.Equal(t, w.output("print(7*6)"), "42")
	h.expect("DELETE", "/api/kernels/"+id, "", 204)
}

// TestE2EJupyterServerOverMutualTLS: Jupyter Server's gateway client with
// --GatewayClient.ca_certs, client_cert and client_key (here through their
// variables) runs a kernel through kernelgate over mutual TLS, REST and
// websocket.
func TestE2EJupyterServerOverMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "kernelgate-test")
	gw, _, _ := tlsGateway(t, ca)
	certFile, keyFile := ca.Client(t, "jupyter-server")
	js := jupyterServer(t, gw, "JUPYTER_GATEWAY_CA_CERTS="+ca.CertFile, "JUPYTER_GATEWAY_CLIENT_CERT="+certFile,
		"JUPYTER_GATEWAY_CLIENT_KEY="+keyFile, "KERNEL_USERNAME=alice")
	specs := decode[map[string]any](t, js.expect("GET", "/api/kernelspecs", "", 200))
	testkit.Equal(t, specs["default"], any("python3"))
	sess := decode[map[string]any](t, js.expect("POST", "/api/sessions", `{"path":"tls.ipynb","type":"notebook","name":"tls","kernel":{"name":"python3"}}`, 201))
	id := sess["kernel"].(map[string]any)["id"].(string)
	gw.expect("GET", "/api/kernels/"+id, "", 200)
	w := js.dialWS(id, "js-tls", false)
	w.ready(60 * time.Second)
	testkit.Equal(t, w.output(`import os; print(os.environ["KERNEL_USERNAME"])`), "alice")
	js.expect("DELETE", "/api/sessions/"+sess["id"].(string), "", 204)
	gw.expect("GET", "/api/kernels/"+id, "", 404)
}

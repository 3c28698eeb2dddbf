package http

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"
)

// testPorts is shared by every harness and benchmark of this package.
var testPorts = func() *ports.Allocator {
	low, high := testkit.PortRange("http")
	return ports.NewAllocator("127.0.0.1", ports.Range{Low: low, High: high}, time.Minute)
}()

// harness is a gateway with its HTTP server on 127.0.0.1:0, real local
// kernels, and a kernelspec directory of its own.
type harness struct {
	t      testing.TB
	url    string
	token  string
	specs  string
	client *nethttp.Client
	// tlsClient is the client side of TLS (websockets use it too), when
	// the gateway serves TLS.
	tlsClient *tls.Config
	gw        *actors.Gateway
	srv       *Server
	// stop shuts the server and the gateway down (again at cleanup: a
	// no-op then).
	stop func()
}

func newHarness(t testing.TB, mod func(*Config, *actors.Config)) *harness {
	t.Helper()
	testkit.RequireIPyKernel(t)
	root := t.TempDir()
	dir := filepath.Join(root, "kernels", "python3")
	testkit.NoError(t, os.MkdirAll(dir, 0o755))
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(`{"argv":["`+testkit.Python()+
		`","-m","ipykernel_launcher","-f","{connection_file}"],"display_name":"Python 3","language":"python","metadata":{"debugger":true}}`), 0o644))
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "logo-64x64.png"), []byte("\x89PNG fake"), 0o644))
	testkit.NoError(t, os.WriteFile(filepath.Join(root, "secret.txt"), []byte("secret"), 0o644))
	testkit.NoError(t, os.Symlink(filepath.Join(root, "secret.txt"), filepath.Join(dir, "logo-escape.png")))
	synth := filepath.Join(root, "kernels", "synthetic")
	testkit.NoError(t, os.MkdirAll(synth, 0o755))
	self, err := os.Executable()
	testkit.NoError(t, err)
	testkit.NoError(t, os.WriteFile(filepath.Join(synth, "kernel.json"), []byte(synthkernel.Spec(self, "synth-kernel")), 0o644))
	// Hostile kernels (testdata/hostile.py): "forger" signs everything with
	// the wrong key, "closer" closes its sockets once it is up.
	script, err := filepath.Abs(filepath.Join("testdata", "hostile.py"))
	testkit.NoError(t, err)
	for name, mode := range map[string]string{"forger": "forge", "closer": "close"} {
		dir := filepath.Join(root, "kernels", name)
		testkit.NoError(t, os.MkdirAll(dir, 0o755))
		spec, err := json.Marshal(map[string]any{"argv": []string{testkit.Python(), script, mode, "{connection_file}"},
			"display_name": name, "language": "python"})
		testkit.NoError(t, err)
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), spec, 0o644))
	}
	restricted := filepath.Join(root, "kernels", "restricted")
	testkit.NoError(t, os.MkdirAll(restricted, 0o755))
	testkit.NoError(t, os.WriteFile(filepath.Join(restricted, "kernel.json"), []byte(`{"argv":["/bin/false"],"display_name":"R","language":"x",`+
		`"metadata":{"process_proxy":{"class_name":"local","config":{"authorized_users":"alice"}}}}`), 0o644))

	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	cache := kernelspecs.NewCache(kernelspecs.CacheOptions{Path: []string{root}, Default: "python3", Logger: log})
	access := kernelspecs.Access{Unauthorized: []string{"root"}}
	lp := &local.Provisioner{Ports: testPorts, RuntimeDir: filepath.Join(t.TempDir(), "rt")}
	reg := proxy.NewRegistry(lp)
	reg.Register(lp, local.ClassNames...)
	acfg := actors.Config{MaxKernelsPerUser: -1, Access: access, BaseEnvs: []string{"PATH", "HOME"}, DefaultUsername: "tester",
		LaunchTimeout: 20 * time.Second, ShutdownWait: 2 * time.Second, Specs: cache, Proxies: reg, Logger: log}
	hcfg := Config{ListKernels: true, Access: access, Version: "test", Logger: log}
	if mod != nil {
		mod(&hcfg, &acfg)
	}
	gw, err := actors.New(acfg)
	testkit.NoError(t, err)
	srv := New(hcfg, gw, cache)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	stop := func() {
		srv.Shutdown(context.Background())
		<-served
		gw.Close(30 * time.Second)
	}
	t.Cleanup(stop)
	scheme := "http"
	if hcfg.TLS != nil {
		scheme = "https"
	}
	return &harness{t: t, url: scheme + "://" + ln.Addr().String() + strings.TrimSuffix(srv.cfg.BaseURL, "/"),
		token: hcfg.AuthToken, specs: root, client: &nethttp.Client{Timeout: 60 * time.Second}, gw: gw, srv: srv, stop: stop}
}

// useTLS makes h's requests and websockets use cfg.
func (h *harness) useTLS(cfg *tls.Config) {
	h.tlsClient = cfg
	h.client = &nethttp.Client{Timeout: 60 * time.Second, Transport: &nethttp.Transport{TLSClientConfig: cfg}}
}

// do sends a request with the harness token (unless headers override
// Authorization) and returns status, body and response headers.
func (h *harness) do(method, path, body string, headers ...string) (int, []byte, nethttp.Header) {
	h.t.Helper()
	req, err := nethttp.NewRequest(method, h.url+path, strings.NewReader(body))
	testkit.NoError(h.t, err)
	if h.token != "" {
		req.Header.Set("Authorization", "token "+h.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.client.Do(req)
	testkit.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	testkit.NoError(h.t, err)
	return resp.StatusCode, b, resp.Header
}

// raw writes a request as given on a connection of its own and returns what
// came back until the server closed it (for requests net/http refuses to
// send; a valid one needs "Connection: close").
func (h *harness) raw(req string) string {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.SplitN(h.url, "/", 4)[2])
	testkit.NoError(h.t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, req)
	testkit.NoError(h.t, err)
	b, _ := io.ReadAll(c)
	return string(b)
}

// expect checks the status and, for errors, the JSON error shape.
func (h *harness) expect(method, path, body string, status int, headers ...string) []byte {
	h.t.Helper()
	got, b, hdr := h.do(method, path, body, headers...)
	if got != status {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
	}
	if status >= 400 && method != "HEAD" {
		var e map[string]any
		if err := json.Unmarshal(b, &e); err != nil {
			h.t.Fatalf("%s %s: error body is not JSON: %q", method, path, b)
		}
		_, hasReason := e["reason"]
		_, hasMessage := e["message"]
		testkit.True(h.t, hasReason && hasMessage, "error body %s lacks reason or message", b)
		testkit.Equal(h.t, hdr.Get("Content-Type"), "application/json")
	}
	return b
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	testkit.NoError(t, json.Unmarshal(b, &v))
	return v
}

// waitPool polls until spec's pool holds a warm kernel.
func (h *harness) waitPool(spec string) {
	h.t.Helper()
	testkit.Eventually(h.t, 60*time.Second, func() error {
		for _, p := range h.gw.Pools() {
			if p.Kernelspec == spec && p.Warm > 0 {
				return nil
			}
		}
		return fmt.Errorf("pools %+v", h.gw.Pools())
	})
}

// scrape reads /metrics with the Prometheus text parser.
func (h *harness) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	status, body, hdr := h.do("GET", "/metrics", "", "Authorization", "")
	testkit.Equal(h.t, status, 200)
	testkit.True(h.t, strings.HasPrefix(hdr.Get("Content-Type"), "text/plain"), "content type %q", hdr.Get("Content-Type"))
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	testkit.NoError(h.t, err)
	return fams
}

// metricValue is the value of the first sample of name whose labels
// include the given name, value pairs; 0 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

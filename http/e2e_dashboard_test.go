package http

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// chromium is the browser the end-to-end tests drive.
func chromium(t *testing.T) {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Chromium is not installed (run `make deps`): %v", err)
	}
}

// TestE2EDashboardInChromium is an operator's visit in headless Chromium:
// the gateway under a base URL, behind a reverse proxy that mounts it under
// a prefix of its own, so that only relative URLs work. The page shows a
// kernel started through the API within 2 s and its state going busy and
// idle during a cell without a reload; an interrupt from the page reaches
// the kernel; no request leaves for another host; nothing is written to the
// console; the hostile user name stays text. Screenshots land in the test's
// artifact directory (go test -artifacts).
func TestE2EDashboardInChromium(t *testing.T) {
	chromium(t)
	h := dashHarness(t, func(c *Config, _ *actors.Config) { c.BaseURL = "/kg/" })
	target, err := url.Parse(strings.TrimSuffix(h.url, "/kg"))
	testkit.NoError(t, err)
	// As nginx's proxy_set_header Host $host: the gateway's origin check
	// compares the page's Origin with the Host it is given.
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/outer")
		r.Out.URL.RawPath = ""
	}}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	artifacts := t.ArtifactDir()
	res := runNode(t, 2*time.Minute, "dashboard.mjs", front.URL+"/outer/kg/dashboard/", h.url, dashToken, artifacts, t.TempDir())
	testkit.Equal(t, res["foreign_requests"], any([]any{}))
	testkit.Equal(t, res["console_errors"], any([]any{}))
	testkit.Equal(t, res["page_errors"], any([]any{}))
	testkit.Equal(t, res["final_url"], any(front.URL+"/outer/kg/dashboard/")) // the token left the address bar
	testkit.Equal(t, res["charts"], any(6.0))
	testkit.True(t, res["appeared_ms"].(float64) <= 2000, "the kernel appeared after %v ms", res["appeared_ms"])
	testkit.Equal(t, res["user_cell"], any(`<img src=x onerror="window.__pwned=1">&amp;`))
	testkit.Equal(t, res["pwned"], any(false))
	testkit.Equal(t, res["saw_busy"], any(true))
	testkit.Equal(t, res["saw_idle"], any(true))
	testkit.Equal(t, res["interrupt_reply"], any("KeyboardInterrupt"))
	testkit.True(t, strings.Contains(fmt.Sprint(res["events"]), "interrupt requested"), "events %v", res["events"])
	testkit.Equal(t, res["drained"], any(true))
	testkit.True(t, !h.gw.Accepting(), "the page's drain did not reach the gateway")
	for _, name := range []string{"dashboard.png", "dashboard-draining.png"} {
		png, err := os.ReadFile(filepath.Join(artifacts, name))
		testkit.NoError(t, err)
		testkit.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "%s is not a PNG", name)
	}
	// The browser has gone: so has its stream.
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := h.srv.dash.live.count(); n != 0 {
			return fmt.Errorf("%d dashboard streams still open", n)
		}
		return nil
	})
}

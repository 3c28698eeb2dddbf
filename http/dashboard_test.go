package http

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/rs/zerolog"
)

const dashToken = "dash-token"

// dashHarness is a harness with the dashboard on, behind a token.
func dashHarness(t *testing.T, mod func(*Config, *actors.Config)) *harness {
	t.Helper()
	return newHarness(t, func(c *Config, a *actors.Config) {
		c.AuthToken, c.Dashboard = dashToken, true
		if mod != nil {
			mod(c, a)
		}
	})
}

// dash sends a request as a browser would: no token unless given in
// headers, redirects not followed.
func (h *harness) dash(method, path, body string, headers ...string) *nethttp.Response {
	h.t.Helper()
	req, err := nethttp.NewRequest(method, h.url+path, strings.NewReader(body))
	testkit.NoError(h.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &nethttp.Client{Timeout: 30 * time.Second, CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error {
		return nethttp.ErrUseLastResponse
	}}
	resp, err := c.Do(req)
	testkit.NoError(h.t, err)
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t testing.TB, resp *nethttp.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	testkit.NoError(t, err)
	return string(b)
}

// session logs in with the token in the query, as an operator's link does,
// and returns the cookie header and the page's CSRF token.
func (h *harness) session() (cookie, csrf string) {
	h.t.Helper()
	resp := h.dash("GET", "/dashboard/?token="+dashToken, "")
	testkit.Equal(h.t, resp.StatusCode, 303)
	testkit.Equal(h.t, resp.Header.Get("Location"), "./")
	set := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "max-age=43200"} {
		testkit.True(h.t, strings.Contains(set, attr), "cookie %q lacks %s", set, attr)
	}
	testkit.True(h.t, !strings.Contains(strings.ToLower(set), "path="), "cookie %q names a path: the browser's own is the right one behind a proxy", set)
	cookie, _, _ = strings.Cut(set, ";")
	page := h.dash("GET", "/dashboard/", "", "Cookie", cookie)
	testkit.Equal(h.t, page.StatusCode, 200)
	body := readAll(h.t, page)
	_, rest, ok := strings.Cut(body, `<meta name="csrf-token" content="`)
	testkit.True(h.t, ok, "no CSRF token in the page")
	csrf, _, _ = strings.Cut(rest, `"`)
	return cookie, csrf
}

func TestDashboardSignIn(t *testing.T) {
	h := dashHarness(t, nil)

	// Unknown browsers get the login form; the routes behind it, 401.
	resp := h.dash("GET", "/dashboard/", "")
	testkit.Equal(t, resp.StatusCode, 401)
	testkit.True(t, strings.Contains(readAll(t, resp), `<form method="post" action="login">`), "no login form")
	testkit.True(t, strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'"), "CSP %q", resp.Header.Get("Content-Security-Policy"))
	testkit.Equal(t, resp.Header.Get("Referrer-Policy"), "no-referrer")
	for _, p := range []string{"/dashboard/events", "/dashboard/kernels/a-b-c-d-e"} {
		testkit.Equal(t, h.dash("GET", p, "").StatusCode, 401)
	}
	testkit.Equal(t, h.dash("POST", "/dashboard/drain", "").StatusCode, 401)
	testkit.Equal(t, h.dash("GET", "/dashboard/?token=wrong", "").StatusCode, 401)

	// Without the slash, the page sends the browser to it, query and all.
	resp = h.dash("GET", "/dashboard?token="+dashToken, "")
	testkit.Equal(t, resp.StatusCode, 303)
	testkit.Equal(t, resp.Header.Get("Location"), "dashboard/?token="+dashToken)

	cookie, csrf := h.session()
	testkit.True(t, len(csrf) > 20, "CSRF token %q", csrf)
	testkit.Equal(t, h.dash("GET", "/dashboard/static/dashboard.js", "").StatusCode, 200)

	// The login form buys the same session; a wrong token does not.
	resp = h.dash("POST", "/dashboard/login", "token=nope", "Content-Type", "application/x-www-form-urlencoded")
	testkit.Equal(t, resp.StatusCode, 401)
	testkit.True(t, strings.Contains(readAll(t, resp), "neither the gateway"), "no problem shown")
	resp = h.dash("POST", "/dashboard/login", "token="+dashToken, "Content-Type", "application/x-www-form-urlencoded")
	testkit.Equal(t, resp.StatusCode, 303)
	formCookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	testkit.Equal(t, h.dash("GET", "/dashboard/", "", "Cookie", formCookie).StatusCode, 200)

	// Forged and expired cookies are refused.
	name, value, _ := strings.Cut(cookie, "=")
	exp, sig, _ := strings.Cut(value, ".")
	later, _ := strconv.ParseInt(exp, 10, 64)
	for _, forged := range []string{
		name + "=" + strconv.FormatInt(later+3600, 10) + "." + sig,
		name + "=" + exp + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		name + "=" + exp,
	} {
		testkit.Equal(t, h.dash("GET", "/dashboard/", "", "Cookie", forged).StatusCode, 401)
	}
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	expired := name + "=" + past + "." + base64.RawURLEncoding.EncodeToString(mac(h.srv.dash.key, "session "+past))
	testkit.Equal(t, h.dash("GET", "/dashboard/", "", "Cookie", expired).StatusCode, 401)

	// The cookie is the dashboard's alone: the API wants the token.
	testkit.Equal(t, h.dash("GET", "/api/kernels", "", "Cookie", cookie).StatusCode, 401)

	// Assets are revalidated by ETag.
	resp = h.dash("GET", "/dashboard/static/uPlot.iife.min.js", "")
	etag := resp.Header.Get("ETag")
	testkit.True(t, etag != "" && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript"), "asset %v", resp.Header)
	testkit.Equal(t, h.dash("GET", "/dashboard/static/uPlot.iife.min.js", "", "If-None-Match", etag).StatusCode, 304)
	testkit.Equal(t, h.dash("GET", "/dashboard/static/nope.js", "").StatusCode, 404)
}

func TestDashboardActionsNeedCSRFAndSameOrigin(t *testing.T) {
	h := dashHarness(t, nil)
	cookie, csrf := h.session()

	// The cookie alone is what another site's form would send.
	resp := h.dash("POST", "/dashboard/drain", "", "Cookie", cookie)
	testkit.Equal(t, resp.StatusCode, 403)
	testkit.True(t, strings.Contains(readAll(t, resp), csrfHeader), "403 does not say why")
	testkit.Equal(t, h.dash("POST", "/dashboard/drain", "", "Cookie", cookie, csrfHeader, "x"+csrf).StatusCode, 403)
	testkit.Equal(t, h.dash("POST", "/dashboard/drain", "", "Cookie", cookie, csrfHeader, csrf, "Origin", "http://evil.example").StatusCode, 404)
	testkit.Equal(t, h.dash("GET", "/readyz", "").StatusCode, 200)

	// Drain: not ready, no new kernels; the API says why.
	testkit.Equal(t, h.dash("POST", "/dashboard/drain", "", "Cookie", cookie, csrfHeader, csrf).StatusCode, 204)
	testkit.Equal(t, h.dash("GET", "/readyz", "").StatusCode, 503)
	b := h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 503)
	testkit.True(t, strings.Contains(string(b), "draining"), "start refused with %s", b)
	// The token itself needs no CSRF token: nothing sends it on its own.
	testkit.Equal(t, h.dash("POST", "/dashboard/resume", "", "Authorization", "token "+dashToken).StatusCode, 204)
	testkit.Equal(t, h.dash("GET", "/readyz", "").StatusCode, 200)

	// Kernel actions, as the API's own.
	m := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201))
	act := func(action string) int {
		return h.dash("POST", "/dashboard/kernels/"+m.ID+"/"+action, "", "Cookie", cookie, csrfHeader, csrf).StatusCode
	}
	testkit.Equal(t, h.dash("POST", "/dashboard/kernels/"+m.ID+"/restart", "", "Cookie", cookie).StatusCode, 403)
	testkit.Equal(t, act("interrupt"), 204)
	testkit.Equal(t, act("restart"), 204)
	events := decode[struct{ Events []actors.Event }](t, []byte(readAll(t, h.dash("GET", "/dashboard/kernels/"+m.ID, "", "Cookie", cookie))))
	var what []string
	for _, e := range events.Events {
		what = append(what, e.What)
	}
	testkit.True(t, slices.Contains(what, "restart requested") && slices.Contains(what, "interrupt requested"), "events %q", what)
	testkit.Equal(t, act("shutdown"), 204)
	testkit.Equal(t, len(h.gw.Kernels()), 0)
	testkit.Equal(t, act("interrupt"), 404)
	testkit.Equal(t, h.dash("GET", "/dashboard/kernels/"+m.ID, "", "Cookie", cookie).StatusCode, 404)
	testkit.Equal(t, h.dash("GET", "/dashboard/kernels/"+m.ID+"/interrupt", "", "Cookie", cookie).StatusCode, 405)
}

func TestDashboardIsForOperatorsOnly(t *testing.T) {
	h := dashHarness(t, func(c *Config, _ *actors.Config) { c.UserIsolation = true })
	cookie, _ := h.session()
	// Under isolation a request that names a user acts for that user.
	resp := h.dash("GET", "/dashboard/", "", "Cookie", cookie, "X-Kernelgate-User", "alice")
	testkit.Equal(t, resp.StatusCode, 403)
	testkit.Equal(t, h.dash("GET", "/dashboard/events", "", "Authorization", "token "+dashToken, "X-Kernelgate-User", "alice").StatusCode, 403)

	off := newHarness(t, func(c *Config, _ *actors.Config) { c.AuthToken = dashToken })
	testkit.Equal(t, off.dash("GET", "/dashboard/?token="+dashToken, "").StatusCode, 404)
	testkit.Equal(t, off.dash("GET", "/dashboard/static/dashboard.js", "").StatusCode, 404)
}

// event is one server-sent event.
type event struct {
	name string
	data map[string]any
}

// events reads a stream's events into a channel until it ends.
func events(t *testing.T, body io.Reader) <-chan event {
	out := make(chan event, 64)
	go func() {
		defer close(out)
		r := bufio.NewReader(body)
		var ev event
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[len("data: "):]), &ev.data); err != nil {
					t.Errorf("event data is not JSON: %v", err)
					return
				}
			case line == "" && ev.name != "":
				out <- ev
				ev = event{}
			}
		}
	}()
	return out
}

// openStream opens an event stream with the token and returns its events.
func (h *harness) openStream() (*nethttp.Response, <-chan event) {
	h.t.Helper()
	resp := h.dash("GET", "/dashboard/events", "", "Authorization", "token "+dashToken)
	testkit.Equal(h.t, resp.StatusCode, 200)
	testkit.Equal(h.t, resp.Header.Get("Content-Type"), "text/event-stream; charset=utf-8")
	return resp, events(h.t.(*testing.T), resp.Body)
}

func kernelIDs(rows any) []string {
	var ids []string
	for _, r := range rows.([]any) {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	return ids
}

func TestDashboardStreamTellsWhatChanged(t *testing.T) {
	h := dashHarness(t, nil)
	before := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic","env":{"KERNEL_USERNAME":"bob"}}`, 201))
	_, evs := h.openStream()
	first := testkit.Recv(t, evs, 5*time.Second)
	testkit.Equal(t, first.name, "state")
	testkit.Equal(t, kernelIDs(first.data["kernels"]), []string{before.ID})
	gw := first.data["gateway"].(map[string]any)
	testkit.True(t, gw["accepting"] == true && gw["replicas"] == nil && gw["max_kernels_per_user"] == -1.0, "gateway %v", gw)
	testkit.Equal(t, first.data["users"].([]any)[0].(map[string]any)["user"], any("bob"))
	vitals := first.data["vitals"].(map[string]any)
	for _, name := range []string{"t", "kernels_idle", "rate_in", "rate_out", "start_p50", "start_p95", "rss_mib", "goroutines", "fds"} {
		col, ok := vitals[name].([]any)
		testkit.True(t, ok && len(col) >= 1, "vitals %s: %v", name, vitals[name])
	}
	testkit.True(t, vitals["rss_mib"].([]any)[0].(float64) > 1, "RSS %v", vitals["rss_mib"])

	// A new kernel and the one that goes arrive as changes, a second apart
	// at most.
	m := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201))
	h.expect("DELETE", "/api/kernels/"+before.ID, "", 204)
	var added, removed bool
	var last float64
	deadline := time.After(10 * time.Second)
	for !added || !removed {
		select {
		case ev := <-evs:
			testkit.Equal(t, ev.name, "update")
			now := ev.data["now"].(float64)
			testkit.True(t, last == 0 || now-last >= 900, "updates %v ms apart", now-last)
			last = now
			added = added || slices.Contains(kernelIDs(ev.data["kernels"]), m.ID)
			for _, id := range ev.data["removed"].([]any) {
				removed = removed || id == before.ID
			}
		case <-deadline:
			t.Fatalf("added %v, removed %v", added, removed)
		}
	}
}

// TestClosedPagesCostNothing: a stream whose page went leaves neither a
// goroutine nor a queue behind, and the bound refuses one stream too many.
func TestClosedPagesCostNothing(t *testing.T) {
	h := dashHarness(t, nil)
	live := h.srv.dash.live
	waitClosed := func() {
		t.Helper()
		h.client.CloseIdleConnections()
		testkit.Eventually(t, 5*time.Second, func() error {
			if n := live.count(); n != 0 {
				return fmt.Errorf("%d streams still open", n)
			}
			return nil
		})
	}
	// A first stream makes sure the server runs everything it runs for
	// good (its worker pool, the dashboard's loop) before the snapshot.
	first, evs := h.openStream()
	testkit.Recv(t, evs, 5*time.Second)
	first.Body.Close()
	waitClosed()
	check := leaktest.Check(t)
	var open []*nethttp.Response
	for range maxStreams {
		resp, evs := h.openStream()
		testkit.Equal(t, testkit.Recv(t, evs, 5*time.Second).name, "state")
		open = append(open, resp)
	}
	resp := h.dash("GET", "/dashboard/events", "", "Authorization", "token "+dashToken)
	testkit.Equal(t, resp.StatusCode, 503)
	testkit.Equal(t, resp.Header.Get("Retry-After"), "10")
	resp.Body.Close()
	for _, r := range open {
		r.Body.Close()
	}
	waitClosed()
	check()
}

// TestPageThatFallsBehindIsDropped: a stream whose page takes no frames is
// dropped once its queue is full, and the others go on.
func TestPageThatFallsBehindIsDropped(t *testing.T) {
	l := newLive(&Server{cfg: Config{Version: "test", Logger: zerolog.Nop()}})
	stuck, _ := net.Pipe()
	reading, _ := net.Pipe()
	slow := &stream{conn: stuck, frames: make(chan []byte, streamQueue), ready: true}
	fast := &stream{conn: reading, frames: make(chan []byte, streamQueue), ready: true}
	l.streams[slow], l.streams[fast] = struct{}{}, struct{}{}
	for range streamQueue + 1 {
		l.broadcast([]byte("frame"))
		<-fast.frames
	}
	testkit.Equal(t, l.count(), 1)
	for range streamQueue {
		<-slow.frames
	}
	_, open := <-slow.frames
	testkit.True(t, !open, "the slow stream's queue is still open")
	_, err := stuck.Write([]byte("x"))
	testkit.True(t, err != nil, "the slow stream's connection is still open")
	l.shutdown(context.Background())
}

func TestStartQuantiles(t *testing.T) {
	// 100 starts: 50 at or under 100 ms, 45 at or under 250 ms, 5 under 1 s.
	cum := make([]uint64, len(actors.DurationBuckets)+1)
	for i, ub := range actors.DurationBuckets {
		switch {
		case ub < 0.1:
		case ub < 0.25:
			cum[i] = 50
		case ub < 1:
			cum[i] = 95
		default:
			cum[i] = 100
		}
	}
	cum[len(actors.DurationBuckets)] = 100
	for q, want := range map[float64]float64{0.5: 100, 0.95: 250, 0.75: 100 + 150*25.0/45} {
		testkit.True(t, math.Abs(quantile(cum, q)-want) < 1e-9, "q%v = %v, want %v", q, quantile(cum, q), want)
	}
	testkit.True(t, math.IsNaN(quantile(make([]uint64, len(cum)), 0.5)), "quantile of nothing")
	over := make([]uint64, len(cum))
	over[len(actors.DurationBuckets)] = 3 // all beyond the last bound
	testkit.Equal(t, quantile(over, 0.5), actors.DurationBuckets[len(actors.DurationBuckets)-1]*1000)
}

func TestVitalsKeepAnHour(t *testing.T) {
	h := newHarness(t, nil)
	v := newVitals()
	start := time.Now()
	for i := range vitalsKept + 10 {
		v.sample(h.gw, start.Add(time.Duration(i)*vitalsEvery))
	}
	ts := v.columns()["t"].([]any)
	testkit.Equal(t, len(ts), vitalsKept)
	testkit.True(t, slices.IsSortedFunc(ts, func(a, b any) int { return int(a.(float64) - b.(float64)) }), "columns out of order")
	testkit.Equal(t, ts[0].(float64), float64(start.Add(10*vitalsEvery).UnixMilli())/1000)
}

// TestDashboardForAdminIdentities: with an identity provider, an admin's
// token (a Hub admin, --admin-users) buys a dashboard session as the
// gateway's token does; a user's does not, nor reaches the dashboard's
// data with its token; a provider that cannot answer makes no operator.
func TestDashboardForAdminIdentities(t *testing.T) {
	h := dashHarness(t, func(c *Config, _ *actors.Config) {
		c.AuthToken, c.Identity, c.AdminUsers = "", people, []string{"carol"}
	})
	for _, tok := range []string{"admin-tok", "carol-tok"} {
		resp := h.dash("GET", "/dashboard/?token="+tok, "")
		testkit.Equal(t, resp.StatusCode, 303)
		cookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
		testkit.Equal(t, h.dash("GET", "/dashboard/", "", "Cookie", cookie).StatusCode, 200)
		testkit.Equal(t, h.dash("GET", "/dashboard/kernels/a-b-c-d-e", "", "Cookie", cookie).StatusCode, 404)
		testkit.Equal(t, h.dash("GET", "/dashboard/kernels/a-b-c-d-e", "", auth(tok)...).StatusCode, 404)
	}
	for _, tok := range []string{"alice-tok", "svc-tok", "down", "nonsense"} {
		testkit.Equal(t, h.dash("GET", "/dashboard/?token="+tok, "").StatusCode, 401)
		resp := h.dash("POST", "/dashboard/login", "token="+tok, "Content-Type", "application/x-www-form-urlencoded")
		testkit.Equal(t, resp.StatusCode, 401)
	}
	testkit.Equal(t, h.dash("GET", "/dashboard/kernels/a-b-c-d-e", "", auth("alice-tok")...).StatusCode, 403)
	testkit.Equal(t, h.dash("POST", "/dashboard/drain", "", auth("alice-tok")...).StatusCode, 403)
	testkit.Equal(t, h.dash("GET", "/dashboard/events", "").StatusCode, 403)
}

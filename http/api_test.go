package http

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

func TestKernelspecEndpoints(t *testing.T) {
	h := newHarness(t, nil)
	list := decode[struct {
		Default     string
		Kernelspecs map[string]struct {
			Name      string
			Spec      map[string]any
			Resources map[string]string
		}
	}](t, h.expect("GET", "/api/kernelspecs", "", 200))
	testkit.Equal(t, list.Default, "python3")
	py := list.Kernelspecs["python3"]
	testkit.Equal(t, py.Name, "python3")
	testkit.Equal(t, py.Resources["logo-64x64"], "/kernelspecs/python3/logo-64x64.png")
	testkit.Equal(t, py.Spec["interrupt_mode"], any("signal"))
	testkit.Equal(t, py.Spec["metadata"], any(map[string]any{"debugger": true}))

	one := decode[map[string]any](t, h.expect("GET", "/api/kernelspecs/python3", "", 200))
	testkit.Equal(t, one["name"], any("python3"))
	h.expect("GET", "/api/kernelspecs/nope", "", 404)

	// ?user= filters by the user lists; Jupyter Server's "user/name" bug is tolerated.
	all := decode[struct{ Kernelspecs map[string]any }](t, h.expect("GET", "/api/kernelspecs", "", 200))
	filtered := decode[struct{ Kernelspecs map[string]any }](t, h.expect("GET", "/api/kernelspecs?user=bob", "", 200))
	testkit.Equal(t, len(filtered.Kernelspecs), len(all.Kernelspecs)-1)
	_, hasRestricted := filtered.Kernelspecs["restricted"]
	testkit.Equal(t, hasRestricted, false)
	filtered = decode[struct{ Kernelspecs map[string]any }](t, h.expect("GET", "/api/kernelspecs?user=alice", "", 200))
	testkit.Equal(t, len(filtered.Kernelspecs), len(all.Kernelspecs))
	h.expect("GET", "/api/kernelspecs/restricted?user=bob", "", 403)
	h.expect("GET", "/api/kernelspecs/python3?user=root", "", 403)
	bug := decode[map[string]any](t, h.expect("GET", "/api/kernelspecs?user=alice/python3", "", 200))
	testkit.Equal(t, bug["name"], any("python3"))
}

func TestKernelspecResourcesCannotEscape(t *testing.T) {
	h := newHarness(t, nil)
	status, body, hdr := h.do("GET", "/kernelspecs/python3/logo-64x64.png", "")
	testkit.Equal(t, status, 200)
	testkit.Equal(t, string(body), "\x89PNG fake")
	testkit.Equal(t, hdr.Get("Content-Type"), "image/png")
	h.expect("HEAD", "/kernelspecs/python3/logo-64x64.png", "", 200)
	for _, p := range []string{
		"/kernelspecs/python3/kernel.json",
		"/kernelspecs/python3/..%2Fkernel.json",
		"/kernelspecs/python3/..%2F..%2F..%2Fsecret.txt",
		"/kernelspecs/python3/%2Fetc%2Fpasswd",
		"/kernelspecs/python3/logo-escape.png",
		"/kernelspecs/..%2F..%2F/secret.txt",
		"/kernelspecs/nope/logo-64x64.png",
		"/kernelspecs/python3/../../secret.txt",
	} {
		status, body, _ := h.do("GET", p, "")
		testkit.True(t, status == 404, "%s: status %d", p, status)
		testkit.True(t, !strings.Contains(string(body), "secret"), "%s leaked %q", p, body)
	}
}

func TestKernelLifecycleEndpoints(t *testing.T) {
	h := newHarness(t, nil)
	h.expect("GET", "/api", "", 200)
	testkit.Equal(t, string(h.expect("GET", "/api/kernels", "", 200)), "[]")

	status, body, hdr := h.do("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_USERNAME":"alice"}}`)
	testkit.Equal(t, status, 201)
	m := decode[actors.Model](t, body)
	testkit.Equal(t, hdr.Get("Location"), "/api/kernels/"+m.ID)
	testkit.Equal(t, m.Name, "python3")
	_, err := time.Parse("2006-01-02T15:04:05.000000Z", m.LastActivity)
	testkit.NoError(t, err)

	got := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+m.ID, "", 200))
	testkit.Equal(t, got.ID, m.ID)
	list := decode[[]actors.Model](t, h.expect("GET", "/api/kernels?1712345678901", "", 200))
	testkit.Equal(t, len(list), 1)

	h.expect("POST", "/api/kernels/"+m.ID+"/interrupt", "", 204)
	r := decode[actors.Model](t, h.expect("POST", "/api/kernels/"+m.ID+"/restart", "{}", 200))
	testkit.Equal(t, r.ID, m.ID)
	h.expect("DELETE", "/api/kernels/"+m.ID, "", 204)
	h.expect("GET", "/api/kernels/"+m.ID, "", 404)
	h.expect("DELETE", "/api/kernels/"+m.ID, "", 404)
	h.expect("POST", "/api/kernels/"+m.ID+"/interrupt", "", 404)
	h.expect("POST", "/api/kernels/"+m.ID+"/restart", "", 404)
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	h := newHarness(t, nil)
	unknown := "11111111-2222-4333-8444-555555555555"
	tests := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"POST", "/api/kernels", `{"name":`, 400, "Invalid JSON"},
		{"POST", "/api/kernels", `[1,2]`, 400, "Invalid JSON"},
		{"POST", "/api/kernels", `{"name":42}`, 400, "'name'"},
		{"POST", "/api/kernels", `{"env":"x"}`, 400, "'env'"},
		{"POST", "/api/kernels", `{"name":"nope"}`, 404, "nope"},
		{"POST", "/api/kernels", `{"env":{"KERNEL_X":1}}`, 400, "must be a string"},
		{"POST", "/api/kernels", `{"env":{"KERNEL_X":"$(id)"}}`, 400, "prohibited"},
		{"POST", "/api/kernels", `{"env":{"KERNEL_ID":"nope"}}`, 400, "UUID"},
		{"POST", "/api/kernels", `{"env":{"KERNEL_USERNAME":"root"}}`, 403, "not authorized"},
		{"POST", "/api/kernels", `{"name":"restricted","env":{"KERNEL_USERNAME":"bob"}}`, 403, "not authorized"},
		{"GET", "/api/kernels/" + unknown, "", 404, "Kernel does not exist: " + unknown},
		{"GET", "/api/kernels/not-a-kernel-id", "", 404, ""},
		{"PUT", "/api/kernels", "", 405, "method"},
		{"PATCH", "/api/kernels/" + unknown, "", 405, "method"},
		{"GET", "/api/kernels/" + unknown + "/interrupt", "", 405, "method"},
		{"GET", "/api/nothing", "", 404, ""},
		{"GET", "/", "", 404, ""},
		{"GET", "/api/kernels/" + unknown + "/channels/extra", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path[:min(len(tt.path), 40)]+" "+tt.body[:min(len(tt.body), 30)], func(t *testing.T) {
			body := h.expect(tt.method, tt.path, tt.body, tt.status)
			testkit.True(t, strings.Contains(string(body), tt.contains), "body %s lacks %q", body, tt.contains)
		})
	}
	// Nothing of the above left a kernel behind.
	testkit.Equal(t, string(h.expect("GET", "/api/kernels", "", 200)), "[]")
}

func TestOversizedBodyIsRefusedBeforeItIsRead(t *testing.T) {
	h := newHarness(t, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	testkit.NoError(t, err)
	defer c.Close()
	// Announce 10 MiB and send none of it: the answer must come anyway.
	fmt.Fprintf(c, "POST /api/kernels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 10<<20)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	testkit.NoError(t, err)
	defer resp.Body.Close()
	testkit.Equal(t, resp.StatusCode, 413)
	b, _ := io.ReadAll(resp.Body)
	testkit.True(t, strings.Contains(string(b), `"reason"`), "body %s", b)
}

func TestHealthEndpointsNeedNoToken(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.AuthToken = "tok" })
	h.token = ""
	h.expect("GET", "/healthz", "", 200)
	h.expect("GET", "/readyz", "", 200)
	h.expect("GET", "/api/kernels", "", 401)
}

func TestListingCanBeDisabled(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.ListKernels = false })
	h.expect("GET", "/api/kernels", "", 403)
	h.expect("GET", "/api/sessions", "", 403)
}

func TestTokenAuth(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.AuthToken = "s3cret" })
	h.expect("GET", "/api/kernelspecs", "", 200)                                              // header token
	h.expect("GET", "/api/kernelspecs", "", 401, "Authorization", "")                         // none
	h.expect("GET", "/api/kernelspecs", "", 401, "Authorization", "token ")                   // empty credential
	h.expect("GET", "/api/kernelspecs", "", 401, "Authorization", "token wrong")              // wrong
	h.expect("GET", "/api/kernelspecs", "", 401, "Authorization", "Bearer s3cret")            // wrong scheme
	h.expect("GET", "/api/kernelspecs?token=s3cret", "", 200, "Authorization", "")            // query token
	h.expect("GET", "/api/kernelspecs?token=wrong", "", 401, "Authorization", "token s3cret") // query first
	h.expect("OPTIONS", "/api/kernels", "", 200, "Authorization", "")                         // preflight
	h.expect("GET", "/nothing/here", "", 404, "Authorization", "")                            // catch-all
}

func TestCORSAndOrigin(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) {
		c.AllowOrigin = "https://lab.example"
		c.AllowHeaders = "authorization,content-type"
	})
	_, _, hdr := h.do("GET", "/api/kernelspecs", "")
	testkit.Equal(t, hdr.Get("Access-Control-Allow-Origin"), "https://lab.example")
	testkit.Equal(t, hdr.Get("Access-Control-Allow-Headers"), "authorization,content-type")
	h.expect("GET", "/api/kernelspecs", "", 200, "Origin", "https://lab.example")
	h.expect("GET", "/api/kernelspecs", "", 404, "Origin", "https://evil.example")
	host := strings.TrimPrefix(h.url, "http://")
	h.expect("GET", "/api/kernelspecs", "", 200, "Origin", "http://"+host) // same origin
}

func TestBaseURL(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.BaseURL = "gw/base" })
	testkit.True(t, strings.HasSuffix(h.url, "/gw/base"), "url %s", h.url)
	list := decode[struct {
		Kernelspecs map[string]struct{ Resources map[string]string }
	}](t, h.expect("GET", "/api/kernelspecs", "", 200))
	testkit.Equal(t, list.Kernelspecs["python3"].Resources["logo-64x64"], "/gw/base/kernelspecs/python3/logo-64x64.png")
	h.expect("GET", "/kernelspecs/python3/logo-64x64.png", "", 200)
}

func TestSessions(t *testing.T) {
	h := newHarness(t, nil)
	h.expect("POST", "/api/sessions", "", 400)
	h.expect("POST", "/api/sessions", `{"type":"notebook"}`, 400)
	h.expect("POST", "/api/sessions", `{"path":"a.ipynb"}`, 400)
	h.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","kernel":{"name":"nope"}}`, 501)
	h.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","kernel":{"id":"11111111-2222-4333-8444-555555555555"}}`, 400)

	status, body, hdr := h.do("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","name":"a","kernel":{"name":"python3"}}`)
	testkit.Equal(t, status, 201)
	s := decode[map[string]any](t, body)
	id := s["id"].(string)
	testkit.Equal(t, hdr.Get("Location"), "/api/sessions/"+id)
	kernel := s["kernel"].(map[string]any)
	testkit.Equal(t, s["notebook"], any(map[string]any{"path": "a.ipynb", "name": "a"}))

	// The same path gives the same session.
	again := decode[map[string]any](t, h.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook"}`, 201))
	testkit.Equal(t, again["id"], any(id))
	list := decode[[]map[string]any](t, h.expect("GET", "/api/sessions", "", 200))
	testkit.Equal(t, len(list), 1)

	// Sessions naming one kernel are bounded: a client cannot grow the
	// store without bound by making them in a loop.
	for i := 1; i < 256; i++ {
		h.expect("POST", "/api/sessions", fmt.Sprintf(`{"path":"more-%d.ipynb","type":"notebook","kernel":{"id":"%s"}}`, i, kernel["id"]), 201)
	}
	h.expect("POST", "/api/sessions", `{"path":"one-too-many.ipynb","type":"notebook","kernel":{"id":"`+kernel["id"].(string)+`"}}`, 403)

	patched := decode[map[string]any](t, h.expect("PATCH", "/api/sessions/"+id, `{"path":"b.ipynb","name":"b"}`, 200))
	testkit.Equal(t, patched["path"], any("b.ipynb"))
	testkit.Equal(t, patched["kernel"].(map[string]any)["id"], kernel["id"])
	h.expect("GET", "/api/sessions/"+id, "", 200)

	h.expect("DELETE", "/api/sessions/"+id, "", 204)
	h.expect("GET", "/api/sessions/"+id, "", 404)
	h.expect("DELETE", "/api/sessions/"+id, "", 404)
	h.expect("GET", "/api/kernels/"+kernel["id"].(string), "", 404)
}

func TestMetricsMoveAsTheGatewayWorks(t *testing.T) {
	h := newHarness(t, nil)
	value := metricValue
	scrape := h.scrape
	before := scrape()
	testkit.True(t, value(before, "go_goroutines") > 0, "no Go runtime metrics")
	id := h.startKernel()
	w := h.dialWS(id, "m", true)
	w.reply(w.execute("print(1)"), 30*time.Second)
	h.expect("GET", "/api/kernels/nope-nope-nope-nope-nope", "", 404)
	after := scrape()
	testkit.Equal(t, value(after, "kernelgate_kernel_starts_total"), value(before, "kernelgate_kernel_starts_total")+1)
	testkit.Equal(t, value(after, "kernelgate_kernels", "state", "idle", "kernelspec", "python3"), 1.0)
	testkit.Equal(t, value(after, "kernelgate_websocket_connections"), 1.0)
	testkit.True(t, value(after, "kernelgate_messages_to_clients_total") >= 4, "messages to clients did not move")
	testkit.True(t, value(after, "kernelgate_messages_to_kernels_total") >= 1, "messages to kernels did not move")
	testkit.Equal(t, value(after, "kernelgate_http_requests_total", "route", "kernels", "method", "POST", "status", "Created"), 1.0)
	testkit.Equal(t, value(after, "kernelgate_http_requests_total", "route", "kernel", "status", "Not Found"), 1.0)
	testkit.Equal(t, value(after, "kernelgate_kernel_start_duration_seconds"), 1.0)
	h.expect("DELETE", "/api/kernels/"+id, "", 204)
	testkit.Equal(t, value(scrape(), "kernelgate_kernel_shutdown_duration_seconds"), 1.0)
}

func TestPooledStartIsReadyAtOnce(t *testing.T) {
	h := newHarness(t, func(_ *Config, a *actors.Config) { a.Pools = map[string]int{"python3": 1} })
	h.waitPool("python3")
	before := h.scrape()
	testkit.Equal(t, metricValue(before, "kernelgate_kernels", "state", "pooled", "kernelspec", "python3"), 1.0)
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200))), 0)

	m := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_USERNAME":"alice"}}`, 201))
	testkit.Equal(t, m.ExecutionState, actors.StateIdle)
	w := h.dialWS(m.ID, "", true)
	w.reply(w.send(zmq.Shell, "kernel_info_request", nil, nil), 10*time.Second)
	out := w.reply(w.execute("print(6*7)"), 30*time.Second)
	testkit.Equal(t, pick(t, out, "iopub", "stream").content["text"], any("42\n"))
	testkit.Equal(t, metricValue(h.scrape(), "kernelgate_pool_takes_total"), 1.0)
}

func TestUserIsolation(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.UserIsolation = true })
	as := func(user string) []string { return []string{"X-Kernelgate-User", user} }
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"python3"}`, 201, as("alice")...)).ID
	sess := decode[map[string]any](t, h.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","kernel":{"id":"`+id+`"}}`, 201, as("alice")...))["id"].(string)

	// Alice sees and uses her kernel and session.
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, as("alice")...))), 1)
	h.expect("GET", "/api/kernels/"+id, "", 200, as("alice")...)
	h.expect("GET", "/api/sessions/"+sess, "", 200, as("alice")...)

	// Bob cannot tell they exist.
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, as("bob")...))), 0)
	testkit.Equal(t, len(decode[[]map[string]any](t, h.expect("GET", "/api/sessions", "", 200, as("bob")...))), 0)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/kernels/" + id}, {"DELETE", "/api/kernels/" + id},
		{"POST", "/api/kernels/" + id + "/interrupt"}, {"POST", "/api/kernels/" + id + "/restart"},
		{"GET", "/api/sessions/" + sess}, {"DELETE", "/api/sessions/" + sess},
	} {
		h.expect(r.method, r.path, "", 404, as("bob")...)
	}
	h.expect("POST", "/api/sessions", `{"path":"b.ipynb","type":"notebook","kernel":{"id":"`+id+`"}}`, 400, as("bob")...)
	status, _, _ := h.do("GET", "/api/kernels/"+id+"/channels", "", append(as("bob"), "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")...)
	testkit.Equal(t, status, 404)

	// Whose ids are live cannot be probed: a taken KERNEL_ID is an id that
	// cannot be used (400, as a malformed one), with the same answer
	// whether it is his own or alice's.
	bobs := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"python3"}`, 201, as("bob")...)).ID
	h.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_ID":"not-a-uuid"}}`, 400, as("bob")...)
	answers := map[string]bool{}
	for _, kid := range []string{id, bobs} {
		b := h.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_ID":"`+kid+`"}}`, 400, as("bob")...)
		answers[strings.ReplaceAll(string(b), kid, "ID")] = true
	}
	testkit.Equal(t, len(answers), 1)
	h.expect("DELETE", "/api/kernels/"+bobs, "", 204, as("bob")...)

	// Nobody starts kernels in someone else's name, or anonymously.
	h.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_USERNAME":"alice"}}`, 403, as("bob")...)
	h.expect("GET", "/api/kernels", "", 403)
	h.expect("GET", "/api/kernels/"+id, "", 403)

	// Alice's kernel is still there and hers to delete.
	h.expect("DELETE", "/api/kernels/"+id, "", 204, as("alice")...)

	// Two users with a document at the same path have a session each, and
	// keep getting it: no fresh kernels, none piling up.
	sessions := map[string]map[string]any{}
	for range 4 {
		for _, user := range []string{"alice", "bob"} {
			got := decode[map[string]any](t, h.expect("POST", "/api/sessions", `{"path":"shared.ipynb","type":"notebook","kernel":{"name":"python3"}}`, 201, as(user)...))
			if first, ok := sessions[user]; ok {
				testkit.Equal(t, got["id"], first["id"])
				testkit.Equal(t, got["kernel"].(map[string]any)["id"], first["kernel"].(map[string]any)["id"])
			}
			sessions[user] = got
		}
	}
	testkit.True(t, sessions["alice"]["id"] != sessions["bob"]["id"], "alice and bob share a session")
	testkit.Equal(t, len(h.gw.Kernels()), 2)
}

func TestSecretsNeverReachTheLog(t *testing.T) {
	var logs testkit.Buffer
	const token, password = "tok-SECRET-123", "pw-SECRET-456"
	runtime := filepath.Join(t.TempDir(), "rt")
	h := newHarness(t, func(c *Config, a *actors.Config) {
		log := zerolog.New(&logs).Level(zerolog.DebugLevel)
		c.Logger, a.Logger, c.AuthToken = log, log, token
		a.Proxies = proxy.NewRegistry(&local.Provisioner{Ports: testPorts, RuntimeDir: runtime})
	})
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_DB_PASSWORD":"`+password+`"}}`, 201)).ID
	ci, err := zmq.ReadConnectionFile(filepath.Join(runtime, "kernel-"+id+".json"))
	testkit.NoError(t, err)
	w := h.dialWS(id, "s", true)
	w.reply(w.execute("import os; print(len(os.environ['KERNEL_DB_PASSWORD']))"), 30*time.Second)
	h.expect("GET", "/api/kernels", "", 401, "Authorization", "token wrong-"+token)
	h.expect("GET", "/api/kernels?token="+token, "", 200, "Authorization", "")
	h.expect("POST", "/api/kernels/"+id+"/restart", "", 200)
	h.expect("DELETE", "/api/kernels/"+id, "", 204)
	// fasthttp quotes a request it cannot parse in its error, at debug level.
	for _, raw := range []string{
		"GET /api/kernels?token=" + token + " HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
		"GET /api/kernels HTTP/1.1\r\nHost: x\r\nAuthorization: token " + token + "\r\n\x00bad\r\n\r\n",
		"POST /api/kernels?x=1&token=" + token + "&y=2 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
	} {
		h.raw(raw)
	}

	out := logs.String()
	testkit.True(t, strings.Contains(out, "kernel up"), "the log is empty: the test proves nothing")
	testkit.True(t, strings.Contains(out, "request refused"), "no malformed request reached the log: the test proves nothing")
	for _, secret := range []string{token, password, ci.Key} {
		testkit.True(t, !strings.Contains(out, secret), "a secret reached the log: %q", secret)
	}
}

// TestInventedMethodsMakeNoNewSeries: the request metrics are labelled by
// method, and a client inventing methods must not create series (each costs
// memory and scrape time for the life of the process).
func TestInventedMethodsMakeNoNewSeries(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 200 {
		h.raw(fmt.Sprintf("M%dETHOD /api/kernels/nope-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i, i))
	}
	methods := map[string]bool{}
	for _, m := range h.scrape()["kernelgate_http_requests_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "method" {
				methods[l.GetValue()] = true
			}
		}
	}
	testkit.True(t, methods["other"], "invented methods were not counted as other: %v", methods)
	testkit.True(t, len(methods) <= 3, "invented methods made series: %v", methods)
}

// TestMalformedBodiesGetClientErrors sends a thousand broken bodies to the
// endpoints that read one: each gets a 4xx with the JSON error shape, no
// kernel starts, and the gateway goes on serving.
func TestMalformedBodiesGetClientErrors(t *testing.T) {
	h := newHarness(t, nil)
	sess := decode[map[string]any](t, h.expect("POST", "/api/sessions", `{"path":"x.ipynb","type":"notebook","kernel":{"name":"nope"}}`, 501))
	testkit.True(t, sess["message"] != nil, "no message in %v", sess)
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := []func() string{
		func() string { // binary garbage
			b := make([]byte, rng.IntN(64))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return "{" + string(b)
		},
		func() string { return `{"name":` + strings.Repeat("[", rng.IntN(2000)) }, // unclosed nesting
		func() string { return `{"name":` + fmt.Sprint(rng.Int()) + `}` },         // wrong type
		func() string { return `{"env":` + []string{"1", `"s"`, "[1]", "true"}[rng.IntN(4)] + `}` },
		func() string {
			return `{"env":{"KERNEL_X":` + []string{"1", "null", "{}", `"a$b"`, `"a\nb"`}[rng.IntN(5)] + `}}`
		},
		func() string { return `{"path":` + []string{"1", "[]", "{}"}[rng.IntN(3)] + `}` },
		func() string { return `[` + fmt.Sprint(rng.Int()) + `]` },
		func() string { return `{"name":"python3"` }, // truncated
	}
	targets := []struct{ method, path string }{{"POST", "/api/kernels"}, {"POST", "/api/sessions"}}
	for i := range 1000 {
		body := shapes[i%len(shapes)]()
		tgt := targets[i%len(targets)]
		status, b, _ := h.do(tgt.method, tgt.path, body)
		testkit.True(t, status >= 400 && status < 500, "%s %s %q: status %d %s", tgt.method, tgt.path, body, status, b)
		var e map[string]any
		testkit.True(t, json.Unmarshal(b, &e) == nil && e["reason"] != nil && e["message"] != nil, "%q: error body %s", body, b)
	}
	testkit.Equal(t, len(h.gw.Kernels()), 0)
	h.expect("GET", "/api", "", 200)
}

// A server error carries an id, in its body and in the matching log line,
// so that what a user reports can be found.
func TestServerErrorsCarryAnIDTheLogHasToo(t *testing.T) {
	var logs testkit.Buffer
	h := newHarness(t, func(c *Config, a *actors.Config) {
		log := zerolog.New(&logs)
		c.Logger, a.Logger = log, log
	})
	b := h.expect("POST", "/api/kernels", `{"name":"restricted","env":{"KERNEL_USERNAME":"alice"}}`, 500)
	id := decode[map[string]string](t, b)["error_id"]
	testkit.True(t, len(id) == 12, "error body %s has no error id", b)
	testkit.True(t, strings.Contains(logs.String(), `"error_id":"`+id+`"`), "the log has no line with error id %s", id)
	b = h.expect("GET", "/api/kernels/nope-nope-nope-nope-nope", "", 404)
	_, has := decode[map[string]string](t, b)["error_id"]
	testkit.True(t, !has, "a client error got an error id: %s", b)
}

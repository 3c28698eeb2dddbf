package http

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/uplot"
	"github.com/valyala/fasthttp"
)

// The operator dashboard, at <base>dashboard/: every kernel with its life,
// the users and pools, the gateway's vitals over the last hour as charts,
// all kept live by one server-sent event stream per open page, and the
// actions an operator needs (interrupt, restart or shut down a kernel;
// drain the replica). docs/dashboard.md describes it for operators.
//
// Who may use it: whoever holds the API's token. A browser cannot put the
// token in a header, so the token (from ?token= once, as the API accepts
// it, or from the login form) buys a session cookie, scoped to the
// dashboard's path, HttpOnly and SameSite=Strict, stateless: a MAC keyed by
// the token, so that every replica sharing the token accepts it and
// changing the token ends every session. Requests that ride on the cookie
// (and, without a token, every request) are ambient: their POSTs must also
// carry the page's CSRF token in a header, which another site can neither
// read nor send without a preflight. Under per-user isolation a request
// naming a user acts for that user and is refused: the dashboard shows
// everyone's kernels.
//
// Every URL the page uses is relative, so it works under --base-url and
// behind a reverse proxy that mounts the gateway under any prefix; every
// asset is embedded (uPlot from internal/uplot), nothing is fetched
// elsewhere, and the Content-Security-Policy says so to the browser.

//go:embed dashboard
var dashboardFiles embed.FS

const (
	// sessionCookie names the dashboard's session cookie.
	sessionCookie = "kernelgate_dashboard"
	// sessionLife is how long a session lasts; then the token is asked again.
	sessionLife = 12 * time.Hour
	// csrfHeader carries the page's CSRF token on its POSTs.
	csrfHeader = "X-Kernelgate-CSRF"
	// dashboardCSP allows the page its own scripts, styles and streams and
	// nothing else; uPlot styles its elements through the CSSOM, which
	// needs no 'unsafe-inline'.
	dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// dashboard serves the dashboard's routes; its live half (the vitals and
// the event streams) is in dashboard_live.go.
type dashboard struct {
	srv *Server
	// key signs session cookies and derives the CSRF token: from the API
	// token when there is one (replicas agree, a new token ends sessions),
	// else random (there are no sessions, but CSRF still needs a secret).
	key    []byte
	csrf   string
	page   *template.Template
	login  *template.Template
	assets map[string]asset
	live   *live
}

// asset is one embedded file as served.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newDashboard(s *Server) *dashboard {
	d := &dashboard{srv: s}
	if s.cfg.AuthToken != "" {
		d.key = mac([]byte(s.cfg.AuthToken), "kernelgate dashboard")
	} else {
		d.key = make([]byte, 32)
		rand.Read(d.key)
	}
	d.csrf = base64.RawURLEncoding.EncodeToString(mac(d.key, "csrf"))
	d.page = template.Must(template.ParseFS(dashboardFiles, "dashboard/index.html"))
	d.login = template.Must(template.ParseFS(dashboardFiles, "dashboard/login.html"))
	d.assets = map[string]asset{
		"uPlot.iife.min.js": newAsset(uplot.JS, "text/javascript; charset=utf-8"),
		"uPlot.min.css":     newAsset(uplot.CSS, "text/css; charset=utf-8"),
		"uPlot.LICENSE":     newAsset(uplot.License, "text/plain; charset=utf-8"),
	}
	for _, name := range []string{"dashboard.js", "dashboard.css"} {
		b, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			panic(err) // embedded at build time: cannot happen
		}
		ct := "text/javascript; charset=utf-8"
		if path.Ext(name) == ".css" {
			ct = "text/css; charset=utf-8"
		}
		d.assets[name] = newAsset(string(b), ct)
	}
	d.live = newLive(s)
	return d
}

func newAsset(body, contentType string) asset {
	sum := sha256.Sum256([]byte(body))
	return asset{body: []byte(body), contentType: contentType, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// match maps the path below <base>dashboard to its route. The page checks
// who is asking itself (an unknown browser gets the login form), the login
// checks the token it is given, the static files are public; the rest take
// the token or the session cookie.
func (d *dashboard) match(segs []string) (route, bool) {
	n := len(segs)
	switch {
	case n == 0:
		return route{name: "dashboard", handler: d.guard(d.servePage), public: true}, true
	case n == 1 && segs[0] == "login":
		return route{name: "dashboard_login", handler: d.serveLogin, public: true}, true
	case n == 2 && segs[0] == "static":
		// The same bytes in every kernelgate, needed by the login form too.
		return route{name: "dashboard_static", handler: d.guard(d.serveAsset), params: segs[1:], public: true}, true
	case n == 1 && segs[0] == "events":
		return route{name: "dashboard_events", handler: d.guard(d.live.serveEvents), session: true}, true
	case n == 2 && segs[0] == "kernels" && isKernelID(segs[1]):
		return route{name: "dashboard_kernel", handler: d.guard(d.serveKernel), params: segs[1:], session: true}, true
	case n == 3 && segs[0] == "kernels" && isKernelID(segs[1]) &&
		(segs[2] == "interrupt" || segs[2] == "restart" || segs[2] == "shutdown"):
		return route{name: "dashboard_action", handler: d.guard(d.kernelAction), params: segs[1:], session: true}, true
	case n == 1 && (segs[0] == "drain" || segs[0] == "resume"):
		return route{name: "dashboard_drain", handler: d.guard(d.drain), params: segs, session: true}, true
	}
	return route{}, false
}

// guard wraps every dashboard handler: the security headers, the refusal
// of requests that act for one user, and the CSRF check of POSTs.
func (d *dashboard) guard(h func(*fasthttp.RequestCtx, []string) error) func(*fasthttp.RequestCtx, []string) error {
	return func(ctx *fasthttp.RequestCtx, p []string) error {
		securityHeaders(ctx)
		if d.srv.cfg.UserIsolation && len(ctx.Request.Header.Peek(d.srv.cfg.UserHeader)) > 0 {
			return errorf(fasthttp.StatusForbidden, "the dashboard shows every user's kernels: a request acting for one user ("+
				d.srv.cfg.UserHeader+") may not use it")
		}
		if ctx.IsPost() && d.ambient(ctx) && !d.csrfOK(ctx) {
			return errorf(fasthttp.StatusForbidden, "missing or wrong "+csrfHeader+" header")
		}
		return h(ctx, p)
	}
}

// requestToken is the token a request carries, as the API reads it.
func requestToken(ctx *fasthttp.RequestCtx) string {
	return identity.TokenFrom(string(ctx.QueryArgs().Peek("token")), string(ctx.Request.Header.Peek("Authorization")))
}

// operator reports whether token is an operator's: the gateway's token, or
// an admin's (a Hub admin, an OIDC admin group, --admin-users). A
// provider that cannot be asked makes nobody an operator.
func (d *dashboard) operator(ctx *fasthttp.RequestCtx, token string) bool {
	switch {
	case token == "":
		return false
	case d.srv.cfg.AuthToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(d.srv.cfg.AuthToken)) == 1:
		return true
	case d.srv.auth == nil:
		return false
	}
	id, err := d.srv.auth.Identify(ctx, token)
	return err == nil && !id.Service && (id.Trusted() || id.Admin || d.srv.admin(id.Name))
}

// open reports a gateway that authenticates nobody: its dashboard too is
// open to whoever reaches it.
func (d *dashboard) open() bool { return d.srv.cfg.AuthToken == "" && d.srv.auth == nil }

// securityHeaders keep the dashboard's pages to themselves: no framing, no
// sniffing, no referrer, no caching, nothing loaded from elsewhere.
func securityHeaders(ctx *fasthttp.RequestCtx) {
	hdr := &ctx.Response.Header
	hdr.Set("Content-Security-Policy", dashboardCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
}

// ambient reports whether a request's authority is one a browser attaches
// by itself (the session cookie, or no auth at all) rather than a token
// the request carries (see Server.dispatch: a token, when there is one,
// decides).
func (d *dashboard) ambient(ctx *fasthttp.RequestCtx) bool {
	return d.open() || requestToken(ctx) == ""
}

func (d *dashboard) csrfOK(ctx *fasthttp.RequestCtx) bool {
	return subtle.ConstantTimeCompare(ctx.Request.Header.Peek(csrfHeader), []byte(d.csrf)) == 1
}

// sessionOK reports whether the request carries a live session cookie.
func (d *dashboard) sessionOK(ctx *fasthttp.RequestCtx) bool {
	if d.open() {
		return true
	}
	v := string(ctx.Request.Header.Cookie(sessionCookie))
	exp, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > until {
		return false
	}
	want := base64.RawURLEncoding.EncodeToString(mac(d.key, "session "+exp))
	return subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1
}

// startSession sets the session cookie. Its Path is left to the browser,
// which takes the directory of the request's URL as it sees it: the
// dashboard's own, whatever prefix a proxy added.
func (d *dashboard) startSession(ctx *fasthttp.RequestCtx) {
	exp := strconv.FormatInt(time.Now().Add(sessionLife).Unix(), 10)
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(sessionCookie)
	c.SetValue(exp + "." + base64.RawURLEncoding.EncodeToString(mac(d.key, "session "+exp)))
	c.SetMaxAge(int(sessionLife / time.Second))
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(ctx.IsTLS() || strings.EqualFold(string(ctx.Request.Header.Peek("X-Forwarded-Proto")), "https"))
	ctx.Response.Header.SetCookie(c)
}

// seeOther redirects to a URL relative to the request's.
func seeOther(ctx *fasthttp.RequestCtx, to string) {
	ctx.Response.Header.Set("Location", to)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
}

// servePage serves GET <base>dashboard/: the page to whoever may see it,
// else the login form. A token that came in the query buys a session and is
// taken out of the address bar (and so of history and referrers) by a
// redirect.
func (d *dashboard) servePage(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethod
	}
	if !bytes.HasSuffix(ctx.Path(), []byte("/")) {
		// <base>dashboard: the page's relative URLs need the slash. The
		// query (a token) comes along, and leaves at the next step.
		to := "dashboard/"
		if q := ctx.URI().QueryString(); len(q) > 0 {
			to += "?" + string(q)
		}
		seeOther(ctx, to)
		return nil
	}
	switch {
	case d.operator(ctx, requestToken(ctx)):
		d.startSession(ctx)
		if ctx.QueryArgs().Has("token") {
			seeOther(ctx, "./")
			return nil
		}
	case !d.sessionOK(ctx):
		return d.serveLoginForm(ctx, fasthttp.StatusUnauthorized, "")
	}
	return d.render(ctx, fasthttp.StatusOK, d.page, map[string]string{"CSRF": d.csrf, "Version": d.srv.cfg.Version})
}

// serveLogin serves POST <base>dashboard/login: the form's token, checked
// as the API checks it, buys a session.
func (d *dashboard) serveLogin(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	securityHeaders(ctx)
	if !d.operator(ctx, string(ctx.PostArgs().Peek("token"))) {
		return d.serveLoginForm(ctx, fasthttp.StatusUnauthorized, "That is neither the gateway's token nor an admin's.")
	}
	d.startSession(ctx)
	seeOther(ctx, "./")
	return nil
}

func (d *dashboard) serveLoginForm(ctx *fasthttp.RequestCtx, status int, problem string) error {
	return d.render(ctx, status, d.login, map[string]string{"Problem": problem})
}

func (d *dashboard) render(ctx *fasthttp.RequestCtx, status int, t *template.Template, data any) error {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("dashboard: rendering %s: %w", t.Name(), err)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
	return nil
}

// serveAsset serves GET <base>dashboard/static/{name}: the page's scripts
// and styles, revalidated by ETag.
func (d *dashboard) serveAsset(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethod
	}
	a, ok := d.assets[p[0]]
	if !ok {
		return errorf(fasthttp.StatusNotFound, "")
	}
	ctx.Response.Header.Set("Cache-Control", "private, no-cache")
	ctx.Response.Header.Set("ETag", a.etag)
	if string(ctx.Request.Header.Peek("If-None-Match")) == a.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	ctx.SetContentType(a.contentType)
	ctx.SetBody(a.body)
	return nil
}

// serveKernel serves GET <base>dashboard/kernels/{id}: the kernel's recent
// lifecycle events (its figures come with the stream).
func (d *dashboard) serveKernel(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	events, err := d.srv.gw.KernelEvents(p[0])
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"id": p[0], "events": events})
	return nil
}

// kernelAction serves POST <base>dashboard/kernels/{id}/{interrupt,restart,
// shutdown}, as the API's own routes do them; each is logged, with who
// asked, for the audit trail.
func (d *dashboard) kernelAction(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	id, action := p[0], p[1]
	d.srv.cfg.Logger.Info().Str("kernel_id", id).Str("action", action).Str("remote", ctx.RemoteIP().String()).Msg("dashboard action")
	var err error
	switch action {
	case "interrupt":
		err = d.srv.gw.Interrupt(id)
	case "restart":
		_, err = d.srv.gw.Restart(id)
	case "shutdown":
		if err = d.srv.gw.Shutdown(id); err == nil {
			d.srv.sessions.forgetKernel(id)
		}
	}
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// drain serves POST <base>dashboard/drain and …/resume (see
// actors.Gateway.Drain).
func (d *dashboard) drain(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	d.srv.cfg.Logger.Info().Str("action", p[0]).Str("remote", ctx.RemoteIP().String()).Msg("dashboard action")
	if p[0] == "drain" {
		d.srv.gw.Drain()
	} else {
		d.srv.gw.Resume()
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// Replica is one gateway of a replicated group as the dashboard lists it
// (actors.MemberView): ready means it beat within a lease; kernels are
// those it owns. Outside a group the dashboard says "single replica".
type Replica struct {
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Kernels int    `json:"kernels"`
	Self    bool   `json:"self"`
}

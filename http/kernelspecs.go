package http

import (
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/valyala/fasthttp"
)

// specModel is a kernelspec as the REST API shows it.
type specModel struct {
	Name      string            `json:"name"`
	Spec      specBody          `json:"spec"`
	Resources map[string]string `json:"resources"`
}

type specBody struct {
	Argv          []string          `json:"argv"`
	Env           map[string]string `json:"env"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Metadata      any               `json:"metadata"`
}

func (s *Server) specModel(sp kernelspecs.Spec) specModel {
	res := make(map[string]string, len(sp.Resources))
	for _, f := range sp.Resources {
		res[kernelspecs.ResourceKey(f)] = s.cfg.BaseURL + "kernelspecs/" + url.PathEscape(sp.Name) + "/" + url.PathEscape(f)
	}
	return specModel{Name: sp.Name, Resources: res, Spec: specBody{
		Argv: sp.Argv, Env: sp.Env, DisplayName: sp.DisplayName, Language: sp.Language,
		InterruptMode: sp.InterruptMode, Metadata: rawJSON(sp.Metadata),
	}}
}

// rawJSON marshals as the bytes it holds.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// userFilter returns the user whose access lists filter the kernelspecs:
// the caller when it acts for a user (its ?user= cannot name another), else
// the ?user= value. It tolerates Jupyter Server's bug that appends "/<name>"
// to ?user= on single-spec URLs (then also returning the spec name).
func (s *Server) userFilter(ctx *fasthttp.RequestCtx) (user, name string) {
	user = string(ctx.QueryArgs().Peek("user"))
	user, name, _ = strings.Cut(user, "/")
	if c := s.caller(ctx); c.user != "" {
		user = c.user
	}
	return user, name
}

// kernelspecList serves GET /api/kernelspecs.
func (s *Server) kernelspecList(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	user, name := s.userFilter(ctx)
	snap := s.specs.Snapshot()
	if name != "" {
		return s.writeSpec(ctx, snap, name, user)
	}
	out := map[string]specModel{}
	for _, n := range snap.Names {
		sp := snap.Specs[n]
		if user == "" || s.cfg.Access.Allows(sp, user) {
			out[n] = s.specModel(sp)
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"default": snap.Default, "kernelspecs": out})
	return nil
}

// kernelspecGet serves GET /api/kernelspecs/{name}.
func (s *Server) kernelspecGet(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	user, _ := s.userFilter(ctx)
	name, err := url.PathUnescape(p[0])
	if err != nil {
		return errorf(fasthttp.StatusNotFound, "Kernel spec "+p[0]+" not found")
	}
	return s.writeSpec(ctx, s.specs.Snapshot(), name, user)
}

func (s *Server) writeSpec(ctx *fasthttp.RequestCtx, snap *kernelspecs.Snapshot, name, user string) error {
	sp, ok := snap.Get(name)
	if !ok {
		return errorf(fasthttp.StatusNotFound, "Kernel spec "+name+" not found")
	}
	if user != "" && !s.cfg.Access.Allows(sp, user) {
		return errorf(fasthttp.StatusForbidden, "User "+user+" is not authorized to use kernel spec "+name)
	}
	writeJSON(ctx, fasthttp.StatusOK, s.specModel(sp))
	return nil
}

// kernelspecResource serves GET/HEAD /kernelspecs/{name}/{file}: only files
// the spec lists as resources, resolved inside its directory.
func (s *Server) kernelspecResource(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethod
	}
	notFound := errorf(fasthttp.StatusNotFound, "resource not found")
	name, err1 := url.PathUnescape(p[0])
	file, err2 := url.PathUnescape(p[1])
	if err1 != nil || err2 != nil {
		return notFound
	}
	sp, ok := s.specs.Snapshot().Get(name)
	if !ok {
		return notFound
	}
	path, ok := sp.ResourcePath(file)
	if !ok {
		return notFound
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return notFound
	}
	ct := mime.TypeByExtension(filepath.Ext(path))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	ctx.SetStatusCode(fasthttp.StatusOK)
	if !ctx.IsHead() {
		ctx.SetBody(b)
	}
	return nil
}

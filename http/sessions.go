package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors"
	"github.com/valyala/fasthttp"
)

// session is one Jupyter Server session: a document bound to a kernel. The
// kernel's state is the gateway's; a session only names it. User is whose
// session it is (the caller that made it; empty without identities): two
// users' documents at the same path are two sessions.
type session struct {
	ID, User, Path, Name, Type, KernelID string
}

// sessionStore holds sessions in memory. It is off the message path, so a
// mutex is fine here.
type sessionStore struct {
	mu   sync.Mutex
	byID map[string]*session
}

// maxSessionsPerKernel bounds the sessions naming one kernel: each is a
// document bound to it, and a client making sessions in a loop must not
// grow the store without bound.
const maxSessionsPerKernel = 256

func newSessionStore() *sessionStore { return &sessionStore{byID: make(map[string]*session)} }

func (st *sessionStore) get(id string) (session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[id]
	if !ok {
		return session{}, false
	}
	return *s, true
}

// byPath finds user's session of the document at path.
func (st *sessionStore) byPath(user, path string) (session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, s := range st.byID {
		if s.User == user && s.Path == path {
			return *s, true
		}
	}
	return session{}, false
}

// put stores s, unless its kernel is already named by maxSessionsPerKernel
// other sessions.
func (st *sessionStore) put(s session) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, replacing := st.byID[s.ID]; !replacing {
		n := 0
		for _, o := range st.byID {
			if o.KernelID == s.KernelID {
				n++
			}
		}
		if n >= maxSessionsPerKernel {
			return &Error{Status: fasthttp.StatusForbidden, Reason: "Resource Limit",
				Message: fmt.Sprintf("kernel %s already has %d sessions", s.KernelID, n)}
		}
	}
	st.byID[s.ID] = &s
	return nil
}

func (st *sessionStore) remove(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, id)
}

func (st *sessionStore) all() []session {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]session, 0, len(st.byID))
	for _, s := range st.byID {
		out = append(out, *s)
	}
	return out
}

// forgetKernel drops the sessions of a kernel that was shut down.
func (st *sessionStore) forgetKernel(kernelID string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, s := range st.byID {
		if s.KernelID == kernelID {
			delete(st.byID, id)
		}
	}
}

// model renders a session with its kernel's current model, or false when
// the kernel is gone (such a session is dropped, as Jupyter Server does).
// Under isolation a session whose kernel is another user's is invisible.
func (s *Server) sessionModel(c caller, sess session) (map[string]any, bool) {
	k, err := s.gw.Kernel(sess.KernelID)
	if err != nil {
		s.sessions.remove(sess.ID)
		return nil, false
	}
	if !visible(c, k) {
		return nil, false
	}
	m := map[string]any{"id": sess.ID, "path": sess.Path, "name": sess.Name, "type": sess.Type, "kernel": k}
	if sess.Type == "notebook" {
		m["notebook"] = map[string]string{"path": sess.Path, "name": sess.Name}
	}
	return m, true
}

type sessionBody struct {
	Path     *string `json:"path"`
	Name     *string `json:"name"`
	Type     *string `json:"type"`
	Notebook *struct {
		Path *string `json:"path"`
		Name *string `json:"name"`
	} `json:"notebook"`
	Kernel *struct {
		ID   *string `json:"id"`
		Name *string `json:"name"`
	} `json:"kernel"`
}

func parseSessionBody(b []byte) (sessionBody, error) {
	var sb sessionBody
	if len(b) == 0 {
		return sb, errorf(fasthttp.StatusBadRequest, "No JSON data provided")
	}
	if err := json.Unmarshal(b, &sb); err != nil {
		return sb, errorf(fasthttp.StatusBadRequest, "Invalid JSON in body of request")
	}
	if sb.Notebook != nil { // the pre-5.0 form
		if sb.Path == nil {
			sb.Path = sb.Notebook.Path
		}
		if sb.Name == nil {
			sb.Name = sb.Notebook.Name
		}
		if sb.Type == nil {
			t := "notebook"
			sb.Type = &t
		}
	}
	return sb, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// sessionList serves /api/sessions: GET lists, POST creates.
func (s *Server) sessionList(ctx *fasthttp.RequestCtx, _ []string) error {
	switch {
	case ctx.IsGet():
		if !s.cfg.ListKernels {
			return &Error{Status: fasthttp.StatusForbidden, Message: "Forbidden: session listing is disabled (EG_LIST_KERNELS)"}
		}
		c := s.caller(ctx)
		out := []map[string]any{}
		for _, sess := range s.sessions.all() {
			if m, ok := s.sessionModel(c, sess); ok {
				out = append(out, m)
			}
		}
		writeJSON(ctx, fasthttp.StatusOK, out)
		return nil
	case ctx.IsPost():
		return s.createSession(ctx)
	}
	return errMethod
}

func (s *Server) createSession(ctx *fasthttp.RequestCtx) error {
	sb, err := parseSessionBody(ctx.PostBody())
	if err != nil {
		return err
	}
	c := s.caller(ctx)
	if sb.Path == nil {
		return errorf(fasthttp.StatusBadRequest, "Missing field in JSON data: path")
	}
	if sb.Type == nil {
		return errorf(fasthttp.StatusBadRequest, "Missing field in JSON data: type")
	}
	if existing, ok := s.sessions.byPath(c.user, *sb.Path); ok {
		if m, ok := s.sessionModel(c, existing); ok {
			s.writeSession(ctx, fasthttp.StatusCreated, existing.ID, m)
			return nil
		}
	}
	sess := session{ID: uuid.NewString(), User: c.user, Path: *sb.Path, Name: str(sb.Name), Type: *sb.Type}
	if sess.KernelID, err = s.sessionKernel(ctx, sb); err != nil {
		return err
	}
	if err := s.sessions.put(sess); err != nil {
		return err
	}
	m, _ := s.sessionModel(c, sess)
	s.writeSession(ctx, fasthttp.StatusCreated, sess.ID, m)
	return nil
}

// sessionKernel attaches to the named kernel id or starts a kernel of the
// named spec.
func (s *Server) sessionKernel(ctx *fasthttp.RequestCtx, sb sessionBody) (string, error) {
	if sb.Kernel != nil && sb.Kernel.ID != nil {
		if _, err := s.kernelFor(ctx, *sb.Kernel.ID); err != nil {
			return "", errorf(fasthttp.StatusBadRequest, "No such kernel: "+*sb.Kernel.ID)
		}
		return *sb.Kernel.ID, nil
	}
	name := ""
	if sb.Kernel != nil {
		name = str(sb.Kernel.Name)
	}
	k, err := s.startKernel(ctx, actors.StartRequest{Name: name, Path: str(sb.Path)})
	if errors.Is(err, actors.ErrNoSuchKernelSpec) {
		return "", &Error{Status: fasthttp.StatusNotImplemented, Message: "The '" + name + "' kernel is not available: " + err.Error()}
	}
	return k.ID, err
}

func (s *Server) writeSession(ctx *fasthttp.RequestCtx, status int, id string, m map[string]any) {
	ctx.Response.Header.Set("Location", s.cfg.BaseURL+"api/sessions/"+id)
	writeJSON(ctx, status, m)
}

// session serves /api/sessions/{id}: GET, PATCH, DELETE.
func (s *Server) session(ctx *fasthttp.RequestCtx, p []string) error {
	c := s.caller(ctx)
	sess, ok := s.sessions.get(p[0])
	notFound := errorf(fasthttp.StatusNotFound, "Session not found: "+p[0])
	if ok {
		_, ok = s.sessionModel(c, sess)
	}
	switch {
	case ctx.IsGet():
		m, alive := s.sessionModel(c, sess)
		if !ok || !alive {
			return notFound
		}
		writeJSON(ctx, fasthttp.StatusOK, m)
		return nil
	case ctx.IsPatch():
		if !ok {
			return notFound
		}
		return s.patchSession(ctx, c, sess)
	case ctx.IsDelete():
		if !ok {
			return notFound
		}
		s.sessions.remove(sess.ID)
		if err := s.gw.Shutdown(sess.KernelID); errors.Is(err, actors.ErrNoSuchKernel) {
			return &Error{Status: fasthttp.StatusGone, Message: "Kernel deleted before session"}
		} else if err != nil {
			return err
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	return errMethod
}

func (s *Server) patchSession(ctx *fasthttp.RequestCtx, c caller, sess session) error {
	sb, err := parseSessionBody(ctx.PostBody())
	if err != nil {
		return err
	}
	if sb.Path != nil {
		sess.Path = *sb.Path
	}
	if sb.Name != nil {
		sess.Name = *sb.Name
	}
	if sb.Type != nil {
		sess.Type = *sb.Type
	}
	old := sess.KernelID
	if sb.Kernel != nil {
		if sess.KernelID, err = s.sessionKernel(ctx, sb); err != nil {
			return err
		}
	}
	if err := s.sessions.put(sess); err != nil {
		return err
	}
	if old != sess.KernelID && (sb.Kernel == nil || sb.Kernel.ID == nil) {
		s.gw.Shutdown(old) // the session moved to a kernel it started
	}
	m, ok := s.sessionModel(c, sess)
	if !ok {
		return errorf(fasthttp.StatusNotFound, "Session's kernel is gone: "+sess.ID)
	}
	writeJSON(ctx, fasthttp.StatusOK, m)
	return nil
}

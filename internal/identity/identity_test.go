package identity

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/kernelgate/kernelgate/internal/hubtest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// shared is one JupyterHub for the package's tests, started by the first
// test that needs it (starting one takes seconds) and stopped by TestMain.
var shared struct {
	once sync.Once
	hub  *hubtest.Hub
	err  error
}

func sharedHub(t *testing.T) *hubtest.Hub {
	t.Helper()
	hubtest.Require(t)
	shared.once.Do(func() { shared.hub, shared.err = hubtest.Launch() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.hub
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.hub != nil {
		shared.hub.Stop()
	}
	os.Exit(code)
}

// noTokenIn fails t if err's text holds the token: tokens are never put in
// errors, which end up in logs.
func noTokenIn(t *testing.T, err error, token string) {
	t.Helper()
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		t.Fatalf("error shows the token: %v", err)
	}
}

func TestTokenFrom(t *testing.T) {
	for _, c := range []struct{ query, header, want string }{
		{"q", "token h", "q"}, // EG's order: the query first
		{"", "token h", "h"},
		{"", "Token h", "h"},
		{"", "Bearer h.j.k", "h.j.k"},
		{"", "bearer  h ", "h"},
		{"", "Basic dXNlcjpwYXNz", ""},
		{"", "token", ""},
		{"", "", ""},
	} {
		testkit.Equal(t, TokenFrom(c.query, c.header), c.want)
	}
}

func TestCheckToken(t *testing.T) {
	testkit.ErrorIs(t, checkToken(""), ErrNoToken)
	testkit.ErrorIs(t, checkToken("a b"), ErrInvalidToken)
	testkit.ErrorIs(t, checkToken("a\r\nX-Injected: 1"), ErrInvalidToken)
	testkit.ErrorIs(t, checkToken("é"), ErrInvalidToken)
	testkit.ErrorIs(t, checkToken(strings.Repeat("a", MaxTokenLen+1)), ErrInvalidToken)
	testkit.NoError(t, checkToken(strings.Repeat("a", MaxTokenLen)))
}

func TestShared(t *testing.T) {
	_, err := NewShared("")
	testkit.True(t, err != nil, "an empty shared token must be refused")
	s, err := NewShared("s3cret")
	testkit.NoError(t, err)
	id, err := s.Identify(context.Background(), "s3cret")
	testkit.NoError(t, err)
	testkit.Equal(t, id, Identity{Source: SourceShared})
	testkit.True(t, id.Trusted(), "the shared token's holder is trusted")
	for _, bad := range []string{"s3cre", "s3cret2", "S3CRET"} {
		_, err := s.Identify(context.Background(), bad)
		testkit.ErrorIs(t, err, ErrInvalidToken)
		noTokenIn(t, err, bad)
	}
	_, err = s.Identify(context.Background(), "")
	testkit.ErrorIs(t, err, ErrNoToken)
}

// fake answers a fixed result and counts its calls.
type fake struct {
	id    Identity
	err   error
	calls int
}

func (f *fake) Identify(context.Context, string) (Identity, error) {
	f.calls++
	return f.id, f.err
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	alice := Identity{Name: "alice", Source: SourceHub}
	no := func() *fake { return &fake{err: ErrInvalidToken} }
	down := func() *fake { return &fake{err: ErrUnavailable} }
	yes := func() *fake { return &fake{id: alice} }

	t.Run("first that accepts wins", func(t *testing.T) {
		a, b, c := no(), yes(), yes()
		id, err := Chain{a, b, c}.Identify(ctx, "tok")
		testkit.NoError(t, err)
		testkit.Equal(t, id, alice)
		testkit.Equal(t, []int{a.calls, b.calls, c.calls}, []int{1, 1, 0})
	})
	t.Run("all refuse", func(t *testing.T) {
		_, err := Chain{no(), no()}.Identify(ctx, "tok")
		testkit.ErrorIs(t, err, ErrInvalidToken)
	})
	t.Run("a provider down makes it undecided", func(t *testing.T) {
		_, err := Chain{no(), down()}.Identify(ctx, "tok")
		testkit.ErrorIs(t, err, ErrUnavailable)
		testkit.True(t, !errors.Is(err, ErrInvalidToken), "undecided is not refused: %v", err)
	})
	t.Run("one down, another accepts", func(t *testing.T) {
		id, err := Chain{down(), yes()}.Identify(ctx, "tok")
		testkit.NoError(t, err)
		testkit.Equal(t, id, alice)
	})
	t.Run("an unexpected error fails closed as unavailable", func(t *testing.T) {
		_, err := Chain{&fake{err: errors.New("bug")}}.Identify(ctx, "tok")
		testkit.ErrorIs(t, err, ErrUnavailable)
	})
	t.Run("no token asks nobody", func(t *testing.T) {
		a := yes()
		_, err := Chain{a}.Identify(ctx, "")
		testkit.ErrorIs(t, err, ErrNoToken)
		testkit.Equal(t, a.calls, 0)
	})
	t.Run("empty chain refuses", func(t *testing.T) {
		_, err := Chain{}.Identify(ctx, "tok")
		testkit.ErrorIs(t, err, ErrInvalidToken)
	})
}

package identity

import (
	"context"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// TestNew builds the whole chain against the real Hub: the shared token,
// then a Hub token.
func TestNew(t *testing.T) {
	hub := sharedHub(t)
	defer leaktest.Check(t)()
	user := newUser(t, hub, "newchain", false)
	tok, _ := hub.CreateToken(t, user)

	c, err := New(Config{SharedToken: "shared", Hub: &HubConfig{APIURL: hub.APIURL, TTL: time.Minute}})
	testkit.NoError(t, err)
	defer c.Close()
	testkit.Equal(t, len(c), 2)
	ctx := context.Background()
	id, err := c.Identify(ctx, "shared")
	testkit.NoError(t, err)
	testkit.True(t, id.Trusted(), "shared token: %+v", id)
	id, err = c.Identify(ctx, tok)
	testkit.NoError(t, err)
	testkit.Equal(t, id.Name, user)
	_, err = c.Identify(ctx, "nobody-has-this-token")
	testkit.ErrorIs(t, err, ErrInvalidToken)

	_, err = New(Config{Hub: &HubConfig{APIURL: "not a url"}})
	testkit.True(t, err != nil, "a bad Hub URL must be refused")
	_, err = New(Config{OIDC: &OIDCConfig{Issuer: "http://127.0.0.1:1"}})
	testkit.True(t, err != nil, "OIDC without an audience must be refused")
}

package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/oidctest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// counting counts the requests for the issuer's keys.
type counting struct {
	keys atomic.Int64
	rt   http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/keys") {
		c.keys.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// CloseIdleConnections lets OIDC.Close close the connections it kept.
func (c *counting) CloseIdleConnections() { c.rt.(*http.Transport).CloseIdleConnections() }

// newOIDC returns an authenticator for dex whose key fetches are counted.
func newOIDC(t *testing.T, dex *oidctest.Dex, cfg OIDCConfig) (*OIDC, *counting) {
	t.Helper()
	c := &counting{rt: &http.Transport{}}
	cfg.Issuer, cfg.Client = dex.Issuer, &http.Client{Transport: c, Timeout: 10 * time.Second}
	if cfg.Audience == "" {
		cfg.Audience = oidctest.ClientID
	}
	if cfg.AdminGroups == nil {
		cfg.AdminGroups = []string{oidctest.AdminGroup}
	}
	o, err := NewOIDC(cfg)
	testkit.NoError(t, err)
	return o, c
}

// jwtParts splits a compact JWT and decodes its header and payload.
func jwtParts(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	testkit.Equal(t, len(parts), 3)
	for i, out := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		testkit.NoError(t, err)
		testkit.NoError(t, json.Unmarshal(b, out))
	}
	return header, payload
}

func encodeJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	testkit.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// otherKey is a key of our own, not the issuer's.
var otherKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// sign signs payload with otherKey, under key id kid.
func sign(t *testing.T, payload map[string]any, kid string) string {
	t.Helper()
	key, err := otherKey()
	testkit.NoError(t, err)
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	testkit.NoError(t, err)
	b, err := json.Marshal(payload)
	testkit.NoError(t, err)
	jws, err := s.Sign(b)
	testkit.NoError(t, err)
	tok, err := jws.CompactSerialize()
	testkit.NoError(t, err)
	return tok
}

// TestOIDCIdentifies: Dex's ID and access tokens name the user from the
// username claim; membership of the admin group makes an admin.
func TestOIDCIdentifies(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	o, _ := newOIDC(t, dex, OIDCConfig{})
	defer o.Close()
	ctx := context.Background()

	alice := dex.Token(t, oidctest.Alice, oidctest.ClientID)
	bob := dex.Token(t, oidctest.Bob, oidctest.ClientID)
	for _, c := range []struct {
		token string
		want  Identity
	}{
		{alice.IDToken, Identity{Name: "alice", Groups: []string{oidctest.UsersGroup}, Source: SourceOIDC}},
		{alice.AccessToken, Identity{Name: "alice", Groups: []string{oidctest.UsersGroup}, Source: SourceOIDC}},
		{bob.IDToken, Identity{Name: "bob", Admin: true, Groups: []string{oidctest.UsersGroup, oidctest.AdminGroup}, Source: SourceOIDC}},
	} {
		id, err := o.Identify(ctx, c.token)
		testkit.NoError(t, err)
		testkit.Equal(t, id, c.want)
	}

	// Another claim for the name: Dex's "email".
	byEmail, _ := newOIDC(t, dex, OIDCConfig{UsernameClaim: "email"})
	defer byEmail.Close()
	id, err := byEmail.Identify(ctx, alice.IDToken)
	testkit.NoError(t, err)
	testkit.Equal(t, id.Name, "alice@example.com")
	// A claim the token lacks identifies nobody.
	noClaim, _ := newOIDC(t, dex, OIDCConfig{UsernameClaim: "upn"})
	defer noClaim.Close()
	_, err = noClaim.Identify(ctx, alice.IDToken)
	testkit.ErrorIs(t, err, ErrInvalidToken)
}

// TestOIDCRefuses: tokens for another audience, expired, forged, unsigned or
// signed by a key that is not the issuer's are ErrInvalidToken.
func TestOIDCRefuses(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{IDTokenTTL: 10 * time.Minute})
	defer leaktest.Check(t)()
	o, keys := newOIDC(t, dex, OIDCConfig{})
	defer o.Close()
	ctx := context.Background()
	alice := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err := o.Identify(ctx, alice) // the keys are fetched now
	testkit.NoError(t, err)
	header, payload := jwtParts(t, alice)
	kid := header["kid"].(string)
	sig := alice[strings.LastIndex(alice, ".")+1:]

	asBob := map[string]any{}
	for k, v := range payload {
		asBob[k] = v
	}
	asBob["preferred_username"], asBob["groups"] = "bob", []string{oidctest.AdminGroup}

	for _, c := range []struct {
		name, token string
	}{
		{"another audience", dex.Token(t, oidctest.Alice, oidctest.OtherClientID).IDToken},
		{"garbage", "garbage"},
		{"a Hub token", "0123456789abcdef0123456789abcdef"},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.e30"},
		{"alg none", encodeJSON(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + encodeJSON(t, payload) + "."},
		{"alg none with the real signature", encodeJSON(t, map[string]any{"alg": "none", "kid": kid}) + "." + encodeJSON(t, payload) + "." + sig},
		{"HS256 (a MAC keyed with public data)", encodeJSON(t, map[string]any{"alg": "HS256", "kid": kid}) + "." + encodeJSON(t, payload) + "." + sig},
		{"payload changed", strings.Join([]string{strings.Split(alice, ".")[0], encodeJSON(t, asBob), sig}, ".")},
		{"another key under the issuer's key id", sign(t, asBob, kid)},
		{"another key under a new key id", sign(t, asBob, "made-up")},
		{"another key without a key id", sign(t, asBob, "")},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := o.Identify(ctx, c.token)
			testkit.ErrorIs(t, err, ErrInvalidToken)
			noTokenIn(t, err, c.token)
		})
	}
	// Each forged token with a key id not seen (or none) made it fetch the
	// keys again, one interval after the fetch before.
	testkit.True(t, keys.keys.Load() <= 3, "%d key fetches", keys.keys.Load())
	_, err = o.Identify(ctx, "")
	testkit.ErrorIs(t, err, ErrNoToken)
}

// TestOIDCExpiry: a token is accepted up to its expiry plus the clock skew,
// and refused after.
func TestOIDCExpiry(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, payload := jwtParts(t, tok)
	exp := time.Unix(int64(payload["exp"].(float64)), 0)
	const skew = 30 * time.Second
	for _, c := range []struct {
		now time.Time
		ok  bool
	}{
		{exp.Add(-time.Second), true},
		{exp.Add(skew - time.Second), true},
		{exp.Add(skew + time.Second), false},
		{exp.Add(24 * time.Hour), false},
	} {
		now := c.now
		o, _ := newOIDC(t, dex, OIDCConfig{ClockSkew: skew, Now: func() time.Time { return now }})
		_, err := o.Identify(context.Background(), tok)
		o.Close()
		if c.ok {
			testkit.NoError(t, err)
		} else {
			testkit.ErrorIs(t, err, ErrInvalidToken)
		}
	}
}

// TestOIDCKeyRotation: Dex comes back with new keys (in-memory storage, so
// a restart is a rotation that also withdraws the old key). The first token
// signed with the new key makes the authenticator fetch the keys again; the
// old key, withdrawn, no longer verifies.
func TestOIDCKeyRotation(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	defer dex.Stop() // restarted below, after the leak check's snapshot
	o, keys := newOIDC(t, dex, OIDCConfig{RefreshInterval: 100 * time.Millisecond})
	defer o.Close()
	ctx := context.Background()
	old := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err := o.Identify(ctx, old)
	testkit.NoError(t, err)
	testkit.Equal(t, keys.keys.Load(), int64(1))

	dex.Restart(t)
	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	oldHeader, _ := jwtParts(t, old)
	newHeader, _ := jwtParts(t, tok)
	testkit.True(t, oldHeader["kid"] != newHeader["kid"], "Dex did not change its key")
	id, err := o.Identify(ctx, tok)
	testkit.NoError(t, err)
	testkit.Equal(t, id.Name, "alice")
	testkit.Equal(t, keys.keys.Load(), int64(2))
	_, err = o.Identify(ctx, old)
	testkit.ErrorIs(t, err, ErrInvalidToken)
}

// TestOIDCKeysMaxAge: keys are fetched again once older than KeysMaxAge, so
// a key the issuer withdrew stops verifying even if no token asks for a new
// one; with the issuer down, old keys go on verifying without a wait.
func TestOIDCKeysMaxAge(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	defer dex.Stop() // restarted below, after the leak check's snapshot
	const maxAge = 200 * time.Millisecond
	o, _ := newOIDC(t, dex, OIDCConfig{KeysMaxAge: maxAge, RefreshInterval: 50 * time.Millisecond})
	defer o.Close()
	ctx := context.Background()
	old := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err := o.Identify(ctx, old)
	testkit.NoError(t, err)

	dex.Restart(t) // withdraws the old key
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, err := o.Identify(ctx, old); !errors.Is(err, ErrInvalidToken) {
			return fmt.Errorf("a withdrawn key still verifies (err %v)", err)
		}
		return nil
	})

	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err = o.Identify(ctx, tok)
	testkit.NoError(t, err)
	dex.Stop()
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, fresh := o.keys.current(); fresh {
			return errors.New("keys still fresh")
		}
		return nil
	})
	start := time.Now()
	_, err = o.Identify(ctx, tok)
	testkit.NoError(t, err)
	testkit.True(t, time.Since(start) < time.Second, "verifying with old keys took %v", time.Since(start))
}

// TestOIDCScheduledRotation: Dex rotates its key on its own schedule and
// keeps the old one published for the tokens it signed; both verify. Dex
// looks for due rotations every 30 s, so this takes that long.
func TestOIDCScheduledRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Dex's 30 s rotation check")
	}
	dex := oidctest.Start(t, oidctest.Options{KeysRotationPeriod: time.Second})
	defer leaktest.Check(t)()
	o, keys := newOIDC(t, dex, OIDCConfig{})
	defer o.Close()
	ctx := context.Background()
	old := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err := o.Identify(ctx, old)
	testkit.NoError(t, err)
	testkit.Eventually(t, 90*time.Second, func() error {
		if n := len(dex.KeyIDs(t)); n < 2 {
			return fmt.Errorf("Dex publishes %d key(s)", n)
		}
		return nil
	})
	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	oldHeader, _ := jwtParts(t, old)
	newHeader, _ := jwtParts(t, tok)
	testkit.True(t, oldHeader["kid"] != newHeader["kid"], "Dex did not rotate its key")
	for _, tk := range []string{tok, old} {
		id, err := o.Identify(ctx, tk)
		testkit.NoError(t, err)
		testkit.Equal(t, id.Name, "alice")
	}
	testkit.Equal(t, keys.keys.Load(), int64(2))
}

// TestOIDCIssuerDown: with keys fetched, tokens verify while the issuer is
// down; without keys, the answer is ErrUnavailable (503), not a refusal, and
// the authenticator recovers when the issuer is back.
func TestOIDCIssuerDown(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	defer dex.Stop() // restarted below, after the leak check's snapshot
	ctx := context.Background()
	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	warm, _ := newOIDC(t, dex, OIDCConfig{})
	defer warm.Close()
	_, err := warm.Identify(ctx, tok)
	testkit.NoError(t, err)
	cold, _ := newOIDC(t, dex, OIDCConfig{RefreshInterval: 100 * time.Millisecond})
	defer cold.Close()

	dex.Stop()
	_, err = warm.Identify(ctx, tok)
	testkit.NoError(t, err)
	_, err = cold.Identify(ctx, tok)
	testkit.ErrorIs(t, err, ErrUnavailable)
	testkit.True(t, !errors.Is(err, ErrInvalidToken), "an issuer that is down refused a token: %v", err)
	noTokenIn(t, err, tok)
	// Garbage is refused without asking anyone.
	_, err = cold.Identify(ctx, "garbage")
	testkit.ErrorIs(t, err, ErrInvalidToken)

	dex.Restart(t)
	tok = dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := cold.Identify(ctx, tok)
		return err
	})
}

// TestOIDCForgedFlood: many forged tokens with made-up key ids at once cost
// the issuer one fetch of its keys per RefreshInterval, not one each, and
// are all refused.
func TestOIDCForgedFlood(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	defer leaktest.Check(t)()
	const interval = 500 * time.Millisecond
	o, keys := newOIDC(t, dex, OIDCConfig{RefreshInterval: interval})
	defer o.Close()
	ctx := context.Background()
	tok := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	_, err := o.Identify(ctx, tok)
	testkit.NoError(t, err)
	_, payload := jwtParts(t, tok)
	forged := make([]string, 20)
	for i := range forged {
		forged[i] = sign(t, payload, fmt.Sprintf("made-up-%d", i))
	}
	before := keys.keys.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for _, f := range forged {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := o.Identify(ctx, f); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("forged token: %v", err)
			}
		}()
	}
	// The genuine token is not held up by them.
	_, err = o.Identify(ctx, tok)
	testkit.NoError(t, err)
	wg.Wait()
	took := time.Since(start)
	fetches := keys.keys.Load() - before
	t.Logf("%d forged tokens in %v: %d key fetches", len(forged), took.Round(time.Millisecond), fetches)
	testkit.True(t, fetches >= 1 && fetches <= 1+int64(took/interval), "%d key fetches in %v", fetches, took)
}

// BenchmarkOIDC measures verifying a Dex token with the keys cached: an
// RS256 signature check and the claims, no request.
func BenchmarkOIDC(b *testing.B) {
	dex := oidctest.Start(b, oidctest.Options{})
	o, err := NewOIDC(OIDCConfig{Issuer: dex.Issuer, Audience: oidctest.ClientID})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	tok := dex.Token(b, oidctest.Alice, oidctest.ClientID).IDToken
	ctx := context.Background()
	if _, err := o.Identify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := o.Identify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

package identity

import (
	"errors"
	"io"
)

// Config says which authenticators the gateway uses. The server's settings
// fill it (cmd/kernelgate: EG_AUTH_TOKEN, KERNELGATE_JUPYTERHUB_API_URL or
// JUPYTERHUB_API_URL, KERNELGATE_AUTH_CACHE_TTL, KERNELGATE_OIDC_*).
type Config struct {
	// SharedToken is EG_AUTH_TOKEN; empty for none.
	SharedToken string
	// Hub is nil unless a JupyterHub API URL is set.
	Hub *HubConfig
	// OIDC is nil unless an issuer is set.
	OIDC *OIDCConfig
}

// New builds the chain for cfg, cheapest first: the shared token, OIDC,
// JupyterHub. An empty chain means no authentication is configured. Close
// the chain when done.
func New(cfg Config) (Chain, error) {
	var c Chain
	if cfg.SharedToken != "" {
		s, err := NewShared(cfg.SharedToken)
		if err != nil {
			return nil, err
		}
		c = append(c, s)
	}
	if cfg.OIDC != nil {
		o, err := NewOIDC(*cfg.OIDC)
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c = append(c, o)
	}
	if cfg.Hub != nil {
		h, err := NewHub(*cfg.Hub)
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c = append(c, h)
	}
	return c, nil
}

// Close closes the authenticators that hold connections or goroutines.
func (c Chain) Close() error {
	var errs []error
	for _, a := range c {
		if cl, ok := a.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}

package http

import (
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	r := newRedactor("shared-SECRET")
	for _, tt := range []struct{ in, secret string }{
		{"GET /api/kernels?token=hub-SECRET HTTP/1.1", "hub-SECRET"},
		{"GET /api/kernels?a=1&token=hub-SECRET&b=2", "hub-SECRET"},
		{"Authorization: token hub-SECRET\r\n", "hub-SECRET"},
		{"authorization: Bearer " + jwt + "\r\n", "c2lnbmF0dXJl"},
		{"cannot parse: bearer opaque-SECRET-value", "opaque-SECRET"},
		{"Cookie: session=cookie-SECRET", "cookie-SECRET"},
		{"a JWT alone: " + jwt + " in text", "eyJzdWIiOiJhbGljZSJ9"},
		{"the shared token shared-SECRET anywhere", "shared-SECRET"},
	} {
		got := r.String(tt.in)
		if strings.Contains(got, tt.secret) || !strings.Contains(got, redacted) {
			t.Errorf("redact(%q) = %q", tt.in, got)
		}
	}
	if got := r.String("GET /api/kernels HTTP/1.1"); got != "GET /api/kernels HTTP/1.1" {
		t.Errorf("text without credentials changed: %q", got)
	}
}

package http

import (
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRequestBodies: no REST body, however malformed, panics its parser,
// and every refusal is a 400 with a message.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"name":"python3","env":{"KERNEL_USERNAME":"alice"}}`, `{"env":[1]}`,
		`{"name":7}`, `{"path":"a.ipynb","type":"notebook","kernel":{"name":"python3"}}`, `{"notebook":{"path":"x"}}`, `[`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range map[string]func([]byte) error{
			"kernel":  func(b []byte) error { _, err := parseStartRequest(b); return err },
			"session": func(b []byte) error { _, err := parseSessionBody(b); return err },
		} {
			err := parse(body)
			var he *Error
			if err != nil && (!errors.As(err, &he) || he.Status != fasthttp.StatusBadRequest || he.Message == "") {
				t.Fatalf("%s body %q: refused with %v, want a 400 with a message", name, body, err)
			}
		}
	})
}

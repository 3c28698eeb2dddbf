package http

import (
	"regexp"
	"strings"
)

// redactor removes credentials from text that may quote a request (fasthttp's
// errors do): the configured token wherever it appears, and the value of
// any token query parameter or Authorization header.
type redactor struct {
	token string
}

func newRedactor(token string) *redactor { return &redactor{token: token} }

// credentials matches a token in a query string, an Authorization or Cookie
// header, up to the end of the value.
var credentials = regexp.MustCompile(`(?i)((?:[?&]token=)|(?:authorization:\s*)|(?:cookie:\s*))[^&\s"\\]*(?:[ \t]+[^&\s"\\]+)?`)

const redacted = "[redacted]"

// String returns s without credentials.
func (r *redactor) String(s string) string {
	if r.token != "" {
		s = strings.ReplaceAll(s, r.token, redacted)
	}
	return credentials.ReplaceAllString(s, "${1}"+redacted)
}

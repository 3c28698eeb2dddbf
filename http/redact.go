package http

import (
	"regexp"
	"strings"
)

// redactor removes credentials from text that may quote a request (fasthttp's
// errors do): the configured token wherever it appears, the value of any
// token query parameter, Authorization or Cookie header, a bearer token
// wherever it is named as one, and anything shaped like a JWT.
type redactor struct {
	token string
}

func newRedactor(token string) *redactor { return &redactor{token: token} }

// credentials matches a token in a query string, an Authorization or Cookie
// header, up to the end of the value.
var credentials = regexp.MustCompile(`(?i)((?:[?&]token=)|(?:authorization:\s*)|(?:cookie:\s*)|(?:\bbearer[ \t]+))[^&\s"\\]*(?:[ \t]+[^&\s"\\]+)?`)

// jwt matches a JSON Web Token: base64url header and payload (both JSON
// objects, so starting "eyJ") and a signature.
var jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)

const redacted = "[redacted]"

// String returns s without credentials.
func (r *redactor) String(s string) string {
	if r.token != "" {
		s = strings.ReplaceAll(s, r.token, redacted)
	}
	s = jwt.ReplaceAllString(s, redacted)
	return credentials.ReplaceAllString(s, "${1}"+redacted)
}

package kernelspecs

import "strings"

// Access holds the gateway-wide user lists (EG's authorized_users and
// unauthorized_users). A spec's metadata.process_proxy.config may carry its
// own lists under the same keys.
type Access struct {
	Authorized   []string
	Unauthorized []string
}

// Allows reports whether user may use spec: denial (global or per spec) wins;
// then a non-empty authorized list (the spec's replaces the global one) must
// name the user. Lists are matched by whole names, not substrings.
func (a Access) Allows(spec Spec, user string) bool {
	if contains(a.Unauthorized, user) || contains(configList(spec, "unauthorized_users"), user) {
		return false
	}
	authorized := a.Authorized
	if _, ok := spec.ProcessProxy.Config["authorized_users"]; ok {
		authorized = configList(spec, "authorized_users")
	}
	return len(authorized) == 0 || contains(authorized, user)
}

// configList reads a user list from the spec's process-proxy config: a
// comma-separated string, as EG writes it, or a JSON array.
func configList(spec Spec, key string) []string {
	switch v := spec.ProcessProxy.Config[key].(type) {
	case string:
		return SplitList(v)
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// SplitList splits a comma-separated list, trimming blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

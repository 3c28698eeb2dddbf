package kubernetes

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// verbs are the API server's request verbs, as its audit log names them,
// and "other" for anything unrecognised.
var verbs = [...]string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "other"}

const (
	verbGet = iota
	verbList
	verbWatch
	verbCreate
	verbUpdate
	verbPatch
	verbDelete
	verbDeleteCollection
	verbOther
)

// requestCounts counts the requests sent to the API server, by verb.
type requestCounts [len(verbs)]atomic.Uint64

// countingTransport counts each request that reaches the wire (after
// client-go's rate limiter, retries included).
type countingTransport struct {
	next   http.RoundTripper
	counts *requestCounts
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.counts[verbOf(r)].Add(1)
	return t.next.RoundTrip(r)
}

// WrappedRoundTripper lets client-go close the idle connections beneath.
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

// verbOf reads a request's verb from its method and path: /api/v1/... and
// /apis/<group>/<version>/..., where a path ending at a resource is its
// collection.
func verbOf(r *http.Request) int {
	switch r.Method {
	case http.MethodPost:
		return verbCreate
	case http.MethodPut:
		return verbUpdate
	case http.MethodPatch:
		return verbPatch
	case http.MethodDelete:
		if isCollection(r.URL.Path) {
			return verbDeleteCollection
		}
		return verbDelete
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true":
			return verbWatch
		case isCollection(r.URL.Path):
			return verbList
		}
		return verbGet
	}
	return verbOther
}

func isCollection(path string) bool {
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/v1/"):
		rest = path[len("/api/v1/"):]
	case strings.HasPrefix(path, "/apis/"):
		parts := strings.SplitN(path[len("/apis/"):], "/", 3)
		if len(parts) < 3 {
			return false // discovery
		}
		rest = parts[2]
	default:
		return false
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	if seg[0] == "namespaces" && len(seg) >= 3 {
		seg = seg[2:] // a namespaced resource
	}
	return len(seg) == 1
}

// APIRequests returns how many requests of each verb were sent to the API
// server so far (verbs never used are left out).
func (p *Provisioner) APIRequests() map[string]uint64 {
	out := map[string]uint64{}
	for i, v := range verbs {
		if n := p.requests[i].Load(); n > 0 {
			out[v] = n
		}
	}
	return out
}

var descRequests = prometheus.NewDesc("kernelgate_k8s_api_requests_total",
	"Requests the Kubernetes process proxy sent to the API server, by verb.", []string{"verb"}, nil)

// Collector serves APIRequests as kernelgate_k8s_api_requests_total.
func (p *Provisioner) Collector() prometheus.Collector { return requestCollector{p.requests} }

type requestCollector struct{ counts *requestCounts }

func (c requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRequests }

func (c requestCollector) Collect(ch chan<- prometheus.Metric) {
	for i, v := range verbs {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(c.counts[i].Load()), v)
	}
}

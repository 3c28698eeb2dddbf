package http

import (
	"bytes"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// metrics is the Prometheus registry behind /metrics: Go runtime and
// process metrics, HTTP requests, and the gateway's own state, read at
// scrape time from the actors' counters and the published kernel list.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(gw *actors.Gateway, srv *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kernelgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kernelgate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, gatewayCollector{gw: gw, srv: srv})
	m.reg.MustRegister(srv.cfg.Collectors...)
	return m
}

func (m *metrics) observe(route string, method []byte, status int, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), fasthttp.StatusMessage(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel is a request's method as a label value: one of HTTP's own, or
// "other", so that a client inventing methods cannot create series (each
// one costs memory and scrape time forever).
func methodLabel(method []byte) string {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodPatch, fasthttp.MethodDelete,
		fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodConnect, fasthttp.MethodTrace:
		return string(method)
	}
	return "other"
}

var (
	descKernels     = prometheus.NewDesc("kernelgate_kernels", "Kernels by execution state and kernelspec.", []string{"state", "kernelspec"}, nil)
	descConnections = prometheus.NewDesc("kernelgate_websocket_connections", "Open kernel websockets.", nil, nil)
	descCounters    = []struct {
		desc *prometheus.Desc
		get  func(*actors.Metrics) uint64
	}{
		{prometheus.NewDesc("kernelgate_kernel_starts_total", "Kernels started.", nil, nil), func(m *actors.Metrics) uint64 { return m.Starts.Load() }},
		{prometheus.NewDesc("kernelgate_kernel_start_failures_total", "Kernels that failed to start.", nil, nil), func(m *actors.Metrics) uint64 { return m.StartFailures.Load() }},
		{prometheus.NewDesc("kernelgate_kernel_restarts_total", "Kernel restarts, automatic and requested.", nil, nil), func(m *actors.Metrics) uint64 { return m.Restarts.Load() }},
		{prometheus.NewDesc("kernelgate_pool_takes_total", "Starts served by a warm pooled kernel.", nil, nil), func(m *actors.Metrics) uint64 { return m.PoolTakes.Load() }},
		{prometheus.NewDesc("kernelgate_iopub_rate_limited_total", "Iopub messages dropped by the iopub rate limits.", nil, nil), func(m *actors.Metrics) uint64 { return m.RateLimited.Load() }},
		{prometheus.NewDesc("kernelgate_kernels_culled_total", "Kernels shut down for inactivity.", nil, nil), func(m *actors.Metrics) uint64 { return m.Culled.Load() }},
		{prometheus.NewDesc("kernelgate_messages_to_clients_total", "Kernel messages written to websockets.", nil, nil), func(m *actors.Metrics) uint64 { return m.MessagesToClients.Load() }},
		{prometheus.NewDesc("kernelgate_messages_to_kernels_total", "Client messages sent to kernels.", nil, nil), func(m *actors.Metrics) uint64 { return m.MessagesToKernels.Load() }},
		{prometheus.NewDesc("kernelgate_slow_consumers_total", "Websockets disconnected for falling behind.", nil, nil), func(m *actors.Metrics) uint64 { return m.SlowConsumers.Load() }},
		{prometheus.NewDesc("kernelgate_messages_merged_total", "Kernel messages merged into others for websockets that fell behind (streams joined, display updates superseded).", nil, nil), func(m *actors.Metrics) uint64 { return m.MessagesMerged.Load() }},
		{prometheus.NewDesc("kernelgate_merge_bytes_saved_total", "Bytes those merges kept off the websockets.", nil, nil), func(m *actors.Metrics) uint64 { return m.MergeBytesSaved.Load() }},
		{prometheus.NewDesc("kernelgate_session_buffer_dropped_total", "Messages dropped from full session buffers.", nil, nil), func(m *actors.Metrics) uint64 { return m.BufferDropped.Load() }},
		{prometheus.NewDesc("kernelgate_session_gaps_total", "Sessions that moved to this replica from one that died, output of whose last moments may be missing.", nil, nil), func(m *actors.Metrics) uint64 { return m.SessionGaps.Load() }},
		{prometheus.NewDesc("kernelgate_replies_rebuilt_total", "Execute replies rebuilt from the kernel's broadcast for clients whose replica died mid-request.", nil, nil), func(m *actors.Metrics) uint64 { return m.RepliesRebuilt.Load() }},
		{prometheus.NewDesc("kernelgate_bad_kernel_messages_total", "Kernel messages dropped for a bad signature or framing.", nil, nil), func(m *actors.Metrics) uint64 { return m.BadKernelMessages.Load() }},
		{prometheus.NewDesc("kernelgate_kernel_queue_dropped_total", "Client messages dropped for a kernel that stopped reading.", nil, nil), func(m *actors.Metrics) uint64 { return m.KernelQueueDropped.Load() }},
	}
	descBadFrames     = prometheus.NewDesc("kernelgate_bad_client_frames_total", "Malformed websocket frames from clients, dropped.", nil, nil)
	descConnsOpen     = prometheus.NewDesc("kernelgate_http_connections_open", "Connections to the API listener open now.", nil, nil)
	descConnsRefused  = prometheus.NewDesc("kernelgate_http_connections_refused_total", "Connections refused because the connection limit was reached.", nil, nil)
	descAcceptRetries = prometheus.NewDesc("kernelgate_http_accept_retries_total", "Accept errors that passed and were retried (descriptors or memory exhausted for a moment).", nil, nil)
	descGroupKernels  = prometheus.NewDesc("kernelgate_group_kernels", "In a replica group: kernels this replica owns (scope owned) and serves, owned or followed (scope known).", []string{"scope"}, nil)
	descGroupReplicas = prometheus.NewDesc("kernelgate_group_replicas", "In a replica group: replicas that beat within a lease, this one included, as of its last sync.", nil, nil)
	descDurations     = []struct {
		desc *prometheus.Desc
		get  func(*actors.Metrics) *actors.Durations
	}{
		{prometheus.NewDesc("kernelgate_kernel_start_duration_seconds", "Kernel starts, from admission to channels up (or a pooled kernel handed over).", nil, nil),
			func(m *actors.Metrics) *actors.Durations { return &m.StartDurations }},
		{prometheus.NewDesc("kernelgate_kernel_shutdown_duration_seconds", "Kernel shutdowns, from the request to the kernel gone.", nil, nil),
			func(m *actors.Metrics) *actors.Durations { return &m.ShutdownDurations }},
	}
)

// gatewayCollector reads the gateway at scrape time; nothing on the message
// path pays for metrics beyond its atomic counters.
type gatewayCollector struct {
	gw  *actors.Gateway
	srv *Server
}

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descKernels
	ch <- descConnections
	ch <- descBadFrames
	ch <- descConnsOpen
	ch <- descConnsRefused
	ch <- descAcceptRetries
	ch <- descGroupKernels
	ch <- descGroupReplicas
	for _, d := range descCounters {
		ch <- d.desc
	}
	for _, d := range descDurations {
		ch <- d.desc
	}
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ state, spec string }
	counts := map[key]int{}
	conns := 0
	for _, k := range c.gw.Kernels() {
		counts[key{k.ExecutionState, k.Name}]++
		conns += k.Connections
	}
	// Pooled kernels are not listed; they are their own states here.
	for _, p := range c.gw.Pools() {
		counts[key{"pooled", p.Kernelspec}] += p.Warm
		counts[key{"pool_starting", p.Kernelspec}] += p.Starting
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descKernels, prometheus.GaugeValue, float64(n), k.state, k.spec)
	}
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(conns))
	ch <- prometheus.MustNewConstMetric(descBadFrames, prometheus.CounterValue, float64(c.srv.badFrames.Load()))
	open := int64(0)
	if ln := c.srv.listener.Load(); ln != nil {
		open = ln.Open()
	}
	ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(open))
	ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(c.srv.connsRefused.Load()))
	ch <- prometheus.MustNewConstMetric(descAcceptRetries, prometheus.CounterValue, float64(c.srv.acceptRetries.Load()))
	if v, ok := c.gw.GroupView(); ok {
		ch <- prometheus.MustNewConstMetric(descGroupKernels, prometheus.GaugeValue, float64(v.Owned), "owned")
		ch <- prometheus.MustNewConstMetric(descGroupKernels, prometheus.GaugeValue, float64(v.Known), "known")
		ch <- prometheus.MustNewConstMetric(descGroupReplicas, prometheus.GaugeValue, float64(v.Replicas))
	}
	m := c.gw.Metrics()
	for _, d := range descCounters {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.get(m)))
	}
	for _, d := range descDurations {
		count, sum, buckets := d.get(m).Snapshot()
		ch <- prometheus.MustNewConstHistogram(d.desc, count, sum, buckets)
	}
}

// metricsHandler serves GET /metrics in the Prometheus text format.
func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	if err := s.metricsAllowed(ctx); err != nil {
		return err
	}
	families, err := s.metrics.reg.Gather()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.FmtText)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	ctx.SetContentType(string(expfmt.FmtText))
	ctx.SetBody(buf.Bytes())
	return nil
}

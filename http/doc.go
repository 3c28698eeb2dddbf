// Package http is kernelgate's HTTP front: a fasthttp server with Enterprise
// Gateway's REST API (kernelspecs, kernels, sessions), token auth, CORS and
// the origin check, and errors as JSON {"reason", "message"}; and the
// operator dashboard (dashboard.go), live over server-sent events.
//
// Handlers copy what they need out of the request, call the actors.Gateway
// and write the answer; no kernel state is kept here (the dashboard keeps
// only its last hour of the gateway's vitals and what its pages were last
// told).
package http

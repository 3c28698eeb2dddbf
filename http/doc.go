// Package http is kernelgate's HTTP front: a fasthttp server with Enterprise
// Gateway's REST API (kernelspecs, kernels, sessions), token auth, CORS and
// the origin check, and errors as JSON {"reason", "message"}.
//
// Handlers copy what they need out of the request, call the actors.Gateway
// and write the answer; no kernel state is kept here.
package http

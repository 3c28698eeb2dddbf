package actors

import (
	"errors"

	"github.com/kernelgate/kernelgate/actors/admission"
)

// Errors callers test with errors.Is; the HTTP layer maps them to status
// codes. Each is wrapped with a message fit for the client.
var (
	// ErrNoSuchKernel: no kernel has that id.
	ErrNoSuchKernel = errors.New("no such kernel")
	// ErrNoSuchKernelSpec: the requested kernelspec does not exist.
	ErrNoSuchKernelSpec = errors.New("no such kernelspec")
	// ErrLimit: max_kernels or max_kernels_per_user would be exceeded.
	ErrLimit = admission.ErrLimit
	// ErrForbidden: the user may not use that kernelspec or kernel.
	ErrForbidden = admission.ErrForbidden
	// ErrBadRequest: the request (its env, its kernel id) is invalid.
	ErrBadRequest = admission.ErrBadRequest
	// ErrConflict: a kernel with the requested id already exists.
	ErrConflict = errors.New("kernel id in use")
	// ErrLaunchTimeout: the kernel did not come up within the launch timeout.
	ErrLaunchTimeout = errors.New("kernel launch timed out")
	// ErrTimeout: a kernel's actor did not answer a request in time (it is
	// stuck behind a flood, or the kernel is slow to shut down).
	ErrTimeout = errors.New("no answer from the kernel in time")
	// ErrKernelDied: the kernel exited while starting or restarting.
	ErrKernelDied = errors.New("kernel died")
	// ErrShuttingDown: the gateway is shutting down and takes no new
	// kernels.
	ErrShuttingDown = errors.New("gateway is shutting down")
	// ErrKernelUnavailable: the kernel cannot serve the request in its
	// present state (it is starting, restarting or being shut down).
	ErrKernelUnavailable = errors.New("kernel unavailable")
)

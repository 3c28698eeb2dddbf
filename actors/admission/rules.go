package admission

import (
	"errors"
	"fmt"

	"github.com/kernelgate/kernelgate/kernelspecs"
)

// Errors of refused starts, for errors.Is (package actors exports them as
// its own).
var (
	// ErrBadRequest: the request (its env, its kernel id) is invalid.
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden: the user may not use that kernelspec or kernel.
	ErrForbidden = errors.New("forbidden")
	// ErrLimit: max_kernels or max_kernels_per_user would be exceeded.
	ErrLimit = errors.New("kernel limit reached")
)

// Authorize applies the user lists (global and the kernelspec's) to user.
func Authorize(access kernelspecs.Access, spec kernelspecs.Spec, user string) error {
	if !access.Allows(spec, user) {
		return fmt.Errorf("%w: user '%s' is not authorized to start kernel '%s'; "+
			"ensure KERNEL_USERNAME is set to an appropriate value and retry the request", ErrForbidden, user, spec.DisplayName)
	}
	return nil
}

// UserLimit refuses a start for user, who has have kernels live and
// starting, when max (negative: none) would be exceeded.
func UserLimit(max, have int, user string) error {
	if max >= 0 && have >= max {
		return fmt.Errorf("%w: a max kernels per user limit has been set to %d and user '%s' currently has %d active and pending kernels",
			ErrLimit, max, user, have)
	}
	return nil
}

// GatewayLimit refuses a start when the gateway has have kernels live and
// starting and max (0: none) would be exceeded.
func GatewayLimit(max, have int) error {
	if max > 0 && have >= max {
		return fmt.Errorf("%w: a max kernels limit has been set to %d and there are currently %d active and pending kernels",
			ErrLimit, max, have)
	}
	return nil
}

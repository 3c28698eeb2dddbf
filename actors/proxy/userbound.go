package proxy

import "github.com/kernelgate/kernelgate/kernelspecs"

// UserBound is a Provisioner whose kernels are their user's from the moment
// they start — a local kernel run as its user's Unix account — so that no
// kernel of theirs can be started before its user is known: the gateway
// keeps no warm pool of the kernelspecs it reports bound.
type UserBound interface {
	UserBound(spec kernelspecs.Spec) bool
}

package podtemplate

import "errors"

var (
	// ErrTemplate reports a template that does not parse or fails to render.
	ErrTemplate = errors.New("kubernetes template")

	// ErrUndefined reports a template that passes an undefined variable to
	// yaml_safe; EG's launcher fails the launch the same way.
	ErrUndefined = errors.New("undefined template variable")

	// ErrStructuredVar reports a KERNEL_VOLUMES or KERNEL_VOLUME_MOUNTS value
	// that is not a YAML list of mappings; EG's launcher refuses it too.
	ErrStructuredVar = errors.New("not a YAML list of mappings")

	// ErrUnsupportedYAML reports YAML that is valid for PyYAML but that this
	// package refuses rather than guess at: anchors and aliases in a client's
	// value, tags other than YAML's core ones, merge keys, keys that are not
	// strings, timestamps in a client's value.
	ErrUnsupportedYAML = errors.New("unsupported YAML")

	// ErrManifest reports rendered YAML that breaks EG's launcher rules: a
	// document that is not an object with a kind, a kind launch_kubernetes.py
	// does not create, two objects of one kind, a custom resource that is not
	// the only document.
	ErrManifest = errors.New("invalid kubernetes manifest")

	// ErrForbidden reports rendered objects that ask for host access (a
	// privileged container, host namespaces, a host path or port, added
	// capabilities) that the template itself does not name, so a client's
	// value put it there.
	ErrForbidden = errors.New("forbidden in kernel objects")
)

package podtemplate

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	// ErrNoImage reports a launch for which neither the client, the
	// kernelspec nor the gateway names a kernel image (EG answers 500).
	ErrNoImage = errors.New("no kernel image could be determined")

	// ErrInvalidID reports a KERNEL_UID or KERNEL_GID that is not an id in
	// 0..4294967295 or that the gateway prohibits (EG answers 403).
	ErrInvalidID = errors.New("invalid or prohibited kernel uid/gid")
)

// Config is what EG's Kubernetes process proxy reads from its EG_*
// variables and the kernelspec's process_proxy config.
type Config struct {
	// Namespace is EG_NAMESPACE, the gateway's namespace ("default" when
	// empty), which kernels share when SharedNamespace is set.
	Namespace       string
	SharedNamespace bool // EG_SHARED_NAMESPACE
	// DefaultServiceAccount is EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME
	// ("default" when empty).
	DefaultServiceAccount string
	// Image is the kernelspec's image_name, else EG_KERNEL_IMAGE.
	Image string
	// ExecutorImage is the kernelspec's executor_image_name, else
	// EG_KERNEL_EXECUTOR_IMAGE; Image when empty.
	ExecutorImage string
	// ProhibitedUIDs and ProhibitedGIDs are EG_PROHIBITED_UIDS and
	// EG_PROHIBITED_GIDS; nil means EG's default, root only.
	ProhibitedUIDs, ProhibitedGIDs []int64
	// MirrorWorkingDirs is EG_MIRROR_WORKING_DIRS: without it a client's
	// KERNEL_WORKING_DIR is dropped.
	MirrorWorkingDirs bool
}

// KernelEnv returns the kernel's environment with what EG's process proxy
// sets before it runs the launcher, which are the defaults the template's
// variables get: KERNEL_POD_NAME (default <username>-<kernel id>, a client
// value may use {{ kernel_xxx }} placeholders, DNS-normalised either way),
// KERNEL_NAMESPACE (the client's, else the shared namespace, else the pod
// name, a namespace the gateway must create: createNamespace),
// KERNEL_SERVICE_ACCOUNT_NAME, KERNEL_IMAGE, KERNEL_EXECUTOR_IMAGE,
// KERNEL_UID and KERNEL_GID (default 1000 and 100, checked and normalised),
// and KERNEL_WORKING_DIR dropped unless mirrored. env must already hold
// KERNEL_USERNAME. The gateway's own KUBERNETES_SERVICE* variables, which
// EG copies in too, are the caller's to add.
func (c Config) KernelEnv(env map[string]string, kernelID string) (out map[string]string, createNamespace bool, err error) {
	out = maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	out["KERNEL_ID"] = kernelID

	// EG settles the pod's name and namespace first, from the client's
	// values as they came.
	podName := podName(env, kernelID)
	out["KERNEL_POD_NAME"] = podName
	out["KERNEL_SERVICE_ACCOUNT_NAME"] = cmpOr(out["KERNEL_SERVICE_ACCOUNT_NAME"], c.DefaultServiceAccount, "default")
	if _, ok := out["KERNEL_NAMESPACE"]; !ok {
		if c.SharedNamespace {
			out["KERNEL_NAMESPACE"] = cmpOr(c.Namespace, "default")
		} else {
			out["KERNEL_NAMESPACE"] = podName
			createNamespace = true
		}
	}

	image := cmpOr(out["KERNEL_IMAGE"], c.Image)
	if image == "" {
		return nil, false, ErrNoImage
	}
	out["KERNEL_IMAGE"] = image
	out["KERNEL_EXECUTOR_IMAGE"] = cmpOr(out["KERNEL_EXECUTOR_IMAGE"], c.ExecutorImage, image)
	if !c.MirrorWorkingDirs {
		delete(out, "KERNEL_WORKING_DIR")
	}
	for _, id := range []struct {
		name, fallback string
		prohibited     []int64
	}{
		{"KERNEL_UID", "1000", c.ProhibitedUIDs},
		{"KERNEL_GID", "100", c.ProhibitedGIDs},
	} {
		text, ok := out[id.name]
		if !ok {
			text = id.fallback
		}
		v, err := kernelID32(text)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s: %w", ErrInvalidID, id.name, err)
		}
		if id.prohibited == nil {
			id.prohibited = []int64{0}
		}
		if slices.Contains(id.prohibited, v) {
			return nil, false, fmt.Errorf("%w: %s %d is prohibited", ErrInvalidID, id.name, v)
		}
		out[id.name] = strconv.FormatInt(v, 10)
	}
	return out, createNamespace, nil
}

// cmpOr returns the first non-empty string. EG takes a client's empty
// KERNEL_IMAGE or KERNEL_SERVICE_ACCOUNT_NAME as given and the pod then
// fails; the defaults serve better.
func cmpOr(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// idRE is what Python's int() takes that a uid or gid can be: digits, with
// single underscores between them, a sign and surrounding spaces. (int()
// also takes non-ASCII digits, which no client means.)
var idRE = regexp.MustCompile(`^\s*[+-]?[0-9]+(?:_[0-9]+)*\s*$`)

func kernelID32(s string) (int64, error) {
	if !idRE.MatchString(s) {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 10, 64)
	if err != nil || v < 0 || v > 1<<32-1 {
		return 0, fmt.Errorf("%q is not in 0..4294967295", s)
	}
	return v, nil
}

var (
	podNamePlaceholder = regexp.MustCompile(`\{\{\s*([a-zA-Z][a-zA-Z0-9_]*)\s*\}\}`)
	notDNS             = regexp.MustCompile(`[^0-9a-z]+`)
)

// podName is EG's pod name: KERNEL_POD_NAME, whose {{ kernel_xxx }}
// placeholders take the KERNEL_* values (any other expression, or a
// missing variable, falls back to the default), else <username>-<kernel
// id>; then lower-cased, runs of characters outside [0-9a-z] made "-", and
// "-" trimmed at both ends.
func podName(env map[string]string, kernelID string) string {
	fallback := env["KERNEL_USERNAME"] + "-" + kernelID
	name, ok := env["KERNEL_POD_NAME"]
	if !ok {
		name = fallback
	} else if strings.Contains(name, "{{") && strings.Contains(name, "}}") {
		keywords := map[string]string{}
		for k, v := range env {
			if strings.HasPrefix(k, "KERNEL_") {
				keywords[strings.ToLower(k)] = v
			}
		}
		keywords["kernel_id"] = kernelID
		missing := false
		name = podNamePlaceholder.ReplaceAllStringFunc(name, func(m string) string {
			v, ok := keywords[podNamePlaceholder.FindStringSubmatch(m)[1]]
			missing = missing || !ok
			return v
		})
		if missing || strings.Contains(name, "{{") && strings.Contains(name, "}}") {
			name = fallback
		}
	}
	return strings.Trim(notDNS.ReplaceAllString(strings.ToLower(name), "-"), "-")
}

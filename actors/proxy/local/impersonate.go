package local

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/internal/privatedir"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

// Errors of kernels that may not run as their user; both are forbidden
// starts (errors.Is admission.ErrForbidden: 403), not failed launches.
var (
	// ErrNoAccount: the kernel's user has no Unix account on this host.
	ErrNoAccount = errors.New("no Unix account")
	// ErrProhibitedID: the kernel would run with a prohibited uid or gid.
	ErrProhibitedID = errors.New("prohibited uid or gid")
)

// Impersonation runs each local kernel as the Unix account of its user (its
// KERNEL_USERNAME, which the HTTP server sets to the verified caller), with
// that account's uid, gid, supplementary groups and home. The gateway must
// run as root.
//
// Kernels of different users then cannot read each other's connection files
// (each user's are in a directory only that user can enter), signal each
// other, or read the gateway's memory and environment.
type Impersonation struct {
	// ProhibitedUIDs and ProhibitedGIDs are never given to a kernel
	// (EG_PROHIBITED_UIDS and EG_PROHIBITED_GIDS, EG's default 0: no kernel
	// runs as root, whatever account its user maps to). A prohibited
	// supplementary group is left out.
	ProhibitedUIDs, ProhibitedGIDs []int
	// KernelIDs takes a kernel's uid and gid from its KERNEL_UID and
	// KERNEL_GID, when the request sets them, instead of from its user's
	// account. Whoever may start kernels then chooses the uid, another
	// user's included: only for gateways whose callers are all trusted.
	KernelIDs bool
}

// account is who a kernel runs as.
type account struct {
	name     string
	uid, gid int
	groups   []uint32
	home     string
}

// accountOf returns the account a kernel with env runs as.
func (im *Impersonation) accountOf(env map[string]string) (*account, error) {
	name := env["KERNEL_USERNAME"]
	if name == "" {
		// A pooled kernel's user is not known yet: it must never run as
		// the gateway's user (root). Pools are off for user-bound
		// kernelspecs (UserBound); this is the last guard.
		return nil, fmt.Errorf("%w: a kernel run as its user needs KERNEL_USERNAME", admission.ErrForbidden)
	}
	a := &account{name: name, home: "/"}
	u, lookupErr := user.Lookup(name)
	if lookupErr == nil {
		a.home = u.HomeDir
	}
	if im.KernelIDs && (env["KERNEL_UID"] != "" || env["KERNEL_GID"] != "") {
		return im.explicit(a, u, env)
	}
	if lookupErr != nil {
		var unknown user.UnknownUserError
		if errors.As(lookupErr, &unknown) {
			return nil, fmt.Errorf("%w: user %q has %w on the gateway's host, and kernels run as their user's account", admission.ErrForbidden, name, ErrNoAccount)
		}
		return nil, fmt.Errorf("looking up the account of %q: %w", name, lookupErr)
	}
	var err error
	if a.uid, err = strconv.Atoi(u.Uid); err == nil {
		a.gid, err = strconv.Atoi(u.Gid)
	}
	if err != nil {
		return nil, fmt.Errorf("account of %q: uid %q, gid %q: %w", name, u.Uid, u.Gid, err)
	}
	if err := im.allowed(a.uid, a.gid); err != nil {
		return nil, fmt.Errorf("account of %q: %w", name, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of %q: %w", name, err)
	}
	for _, g := range gids {
		n, err := strconv.Atoi(g)
		if err == nil && !slices.Contains(im.ProhibitedGIDs, n) {
			a.groups = append(a.groups, uint32(n))
		}
	}
	return a, nil
}

// explicit is the account of KERNEL_UID and KERNEL_GID (either defaults to
// the user's account, when there is one). It has no supplementary groups,
// and the account's home only if the uid is the account's.
func (im *Impersonation) explicit(a *account, u *user.User, env map[string]string) (*account, error) {
	uid, gid := env["KERNEL_UID"], env["KERNEL_GID"]
	if u != nil {
		if uid == "" {
			uid = u.Uid
		} else if uid != u.Uid {
			a.home = "/"
		}
		if gid == "" {
			gid = u.Gid
		}
	}
	var err error
	if a.uid, err = parseID(uid); err != nil {
		return nil, fmt.Errorf("%w: KERNEL_UID: %w", admission.ErrBadRequest, err)
	}
	if a.gid, err = parseID(gid); err != nil {
		return nil, fmt.Errorf("%w: KERNEL_GID: %w", admission.ErrBadRequest, err)
	}
	if err := im.allowed(a.uid, a.gid); err != nil {
		return nil, err
	}
	return a, nil
}

// parseID reads a uid or gid as EG does: an integer in 0..2^32-2 (-1 means
// "unchanged" to the kernel's chown and setuid).
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a uid or gid", s)
	}
	return int(n), nil
}

func (im *Impersonation) allowed(uid, gid int) error {
	if slices.Contains(im.ProhibitedUIDs, uid) {
		return fmt.Errorf("%w: %w: uid %d", admission.ErrForbidden, ErrProhibitedID, uid)
	}
	if slices.Contains(im.ProhibitedGIDs, gid) {
		return fmt.Errorf("%w: %w: gid %d", admission.ErrForbidden, ErrProhibitedID, gid)
	}
	return nil
}

// prepare returns the directory for a kernel's files and, under
// impersonation, the account the kernel runs as.
func (p *Provisioner) prepare(env map[string]string) (string, *account, error) {
	if p.Impersonate == nil {
		if err := privatedir.Ensure(p.RuntimeDir); err != nil {
			return "", nil, fmt.Errorf("%w: runtime dir: %w", proxy.ErrLaunch, err)
		}
		return p.RuntimeDir, nil, nil
	}
	a, err := p.Impersonate.accountOf(env)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	dir, err := a.dir(p.RuntimeDir)
	if err != nil {
		return "", nil, fmt.Errorf("%w: runtime dir: %w", proxy.ErrLaunch, err)
	}
	return dir, a, nil
}

// dir is the account's directory of connection files and logs: a 0700
// directory it owns, named by its uid, inside the runtime directory, which
// is passable (0711) so that the kernel reaches it but nobody lists it.
func (a *account) dir(runtimeDir string) (string, error) {
	if err := privatedir.EnsurePassable(runtimeDir); err != nil {
		return "", err
	}
	dir := filepath.Join(runtimeDir, strconv.Itoa(a.uid))
	return dir, privatedir.EnsureFor(dir, a.uid, a.gid)
}

// env is the kernel's environment as the account's: its home and names
// replace the gateway's.
func (a *account) env(env map[string]string) map[string]string {
	env = maps.Clone(env)
	env["HOME"], env["USER"], env["LOGNAME"] = a.home, a.name, a.name
	return env
}

// credential is what the kernel's process runs with.
func (a *account) credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: a.groups}
}

// workDir is where the kernel starts when the request names no directory:
// the account's home, or / when it has none (the gateway's own working
// directory is likely not the user's to enter).
func (a *account) workDir() string {
	if st, err := os.Stat(a.home); err == nil && st.IsDir() {
		return a.home
	}
	return "/"
}

// openLog opens a detached kernel's log for appending, given to the kernel's
// account if it has one. The log lives in the account's own directory,
// where its user could have planted a link under the name: a symlink is not
// followed, and a file that is not a fresh one of the gateway's or the
// user's own (a hard link to someone else's file) is refused.
func openLog(path string, a *account) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if a == nil {
		return os.OpenFile(path, flags, 0o600)
	}
	f, err := os.OpenFile(path, flags|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		sys := st.Sys().(*syscall.Stat_t)
		switch {
		case !st.Mode().IsRegular() || sys.Nlink != 1 || int(sys.Uid) != os.Getuid() && int(sys.Uid) != a.uid:
			err = fmt.Errorf("%s is not a file of the gateway's or of %s: refusing to write to it", path, a.name)
		case int(sys.Uid) != a.uid:
			err = f.Chown(a.uid, a.gid)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// UserBound reports whether kernels of spec run as their user: then none
// can start before its user is known, and the kernelspec has no warm pool
// (a pooled kernel would run as the gateway, or as one uid shared by every
// user it is handed to).
func (p *Provisioner) UserBound(kernelspecs.Spec) bool { return p.Impersonate != nil }

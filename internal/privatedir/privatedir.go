// Package privatedir makes directories that hold secrets (kernel connection
// files, kernel records with their keys) safe to use in shared places such
// as /tmp: only this user may enter them, and a directory or symlink another
// user planted there is refused rather than used.
package privatedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Errors for directories that must not be used.
var (
	// ErrSymlink: the path is a symbolic link (which could point anywhere,
	// e.g. into another user's directory).
	ErrSymlink = errors.New("is a symbolic link")
	// ErrNotOwned: the directory belongs to another user, who could read
	// or replace what is written there.
	ErrNotOwned = errors.New("is owned by another user")
	// ErrNotDir: the path exists and is not a directory.
	ErrNotDir = errors.New("is not a directory")
)

// Ensure makes dir a directory only this process's user can enter: it is
// created (mode 0700, parents 0755) when missing; an existing one must be a
// real directory owned by this user, and is set to 0700. The checks and the
// mode change are made on the opened directory itself, so a path swapped
// between them cannot redirect them.
func Ensure(dir string) error { return ensure(dir, os.Getuid(), -1, 0o700) }

// EnsurePassable is Ensure with mode 0711: other users may pass through dir
// to a subdirectory of their own (see EnsureFor) but neither list nor
// change it, so they learn nothing of the others'.
func EnsurePassable(dir string) error { return ensure(dir, os.Getuid(), -1, 0o711) }

// EnsureFor makes dir a directory only the user uid can enter: mode 0700,
// owned by uid:gid. It needs root. A directory this process's user owns
// (just made, or left from a failed attempt) is given to uid; one owned by
// any other user is refused.
func EnsureFor(dir string, uid, gid int) error { return ensure(dir, uid, gid, 0o700) }

// ensure makes dir a directory of owner with mode, giving it to owner (and
// gid, unless negative) when this process's user owns it.
func ensure(dir string, owner, gid int, mode uint32) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", dir, err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		// Linux reports a symlink as not a directory under O_DIRECTORY.
		if st, lerr := os.Lstat(dir); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s %w: refusing to use it", dir, ErrSymlink)
		}
		return fmt.Errorf("%s %w", dir, ErrNotDir)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if int(st.Uid) != owner {
		if int(st.Uid) != os.Getuid() {
			return fmt.Errorf("%s %w (uid %d): refusing to use it", dir, ErrNotOwned, st.Uid)
		}
		if err := syscall.Fchown(fd, owner, gid); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	if st.Mode&0o777 != mode {
		if err := syscall.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return nil
}

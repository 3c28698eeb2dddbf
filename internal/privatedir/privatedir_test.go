package privatedir

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestEnsure(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"missing, with missing parents", func(t *testing.T, dir string) {}, nil},
		{"ours, too open", func(t *testing.T, dir string) {
			testkit.NoError(t, os.MkdirAll(dir, 0o777))
			testkit.NoError(t, os.Chmod(dir, 0o777))
		}, nil},
		{"a symlink to a directory", func(t *testing.T, dir string) {
			target := t.TempDir()
			testkit.NoError(t, os.Chmod(target, 0o755))
			testkit.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			testkit.NoError(t, os.Symlink(target, dir))
		}, ErrSymlink},
		{"a file", func(t *testing.T, dir string) {
			testkit.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			testkit.NoError(t, os.WriteFile(dir, nil, 0o600))
		}, ErrNotDir},
		{"another user's", func(t *testing.T, dir string) {
			if os.Getuid() != 0 {
				t.Skip("only root can make a directory another user owns") // the suite runs as root
			}
			testkit.NoError(t, os.MkdirAll(dir, 0o777))
			testkit.NoError(t, os.Chown(dir, 65534, 65534))
		}, ErrNotOwned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b", "runtime")
			tt.setup(t, dir)
			err := Ensure(dir)
			if tt.want != nil {
				testkit.True(t, errors.Is(err, tt.want), "Ensure returned %v, want %v", err, tt.want)
				if tt.want == ErrSymlink {
					st, err := os.Stat(dir) // the link's target
					testkit.NoError(t, err)
					testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o755))
				}
				return
			}
			testkit.NoError(t, err)
			st, err := os.Lstat(dir)
			testkit.NoError(t, err)
			testkit.True(t, st.IsDir(), "not a directory")
			testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o700))
		})
	}
}

// EnsureFor gives a directory to the user whose kernels use it, and
// EnsurePassable lets users through the directory above it.
func TestEnsureFor(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("only root can give a directory to another user") // the suite runs as root
	}
	const uid, gid = 65534, 65534
	root := filepath.Join(t.TempDir(), "rt")
	testkit.NoError(t, EnsurePassable(root))
	mine := filepath.Join(root, "65534")
	testkit.NoError(t, EnsureFor(mine, uid, gid))
	testkit.NoError(t, EnsureFor(mine, uid, gid)) // again: already theirs
	for dir, want := range map[string]os.FileMode{root: 0o711, mine: 0o700} {
		st, err := os.Lstat(dir)
		testkit.NoError(t, err)
		testkit.Equal(t, st.Mode().Perm(), want)
	}
	st, _ := os.Lstat(mine)
	testkit.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(uid))
	testkit.Equal(t, st.Sys().(*syscall.Stat_t).Gid, uint32(gid))

	// Another user's directory is not taken over, nor is a symlink used.
	other := filepath.Join(root, "1")
	testkit.NoError(t, os.Mkdir(other, 0o700))
	testkit.NoError(t, os.Chown(other, 2, 2))
	testkit.True(t, errors.Is(EnsureFor(other, uid, gid), ErrNotOwned), "took another user's directory")
	link := filepath.Join(root, "2")
	testkit.NoError(t, os.Symlink(t.TempDir(), link))
	testkit.True(t, errors.Is(EnsureFor(link, uid, gid), ErrSymlink), "used a symlink")
}

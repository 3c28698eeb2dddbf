package local

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/unixtest"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

func TestAccountOf(t *testing.T) {
	alice := unixtest.NewAccount(t, "kgt-alice")
	im := &Impersonation{ProhibitedUIDs: []int{0}, ProhibitedGIDs: []int{0}}
	a, err := im.accountOf(map[string]string{"KERNEL_USERNAME": alice.Name, "KERNEL_UID": "0"})
	testkit.NoError(t, err)
	testkit.Equal(t, *a, account{name: alice.Name, uid: alice.UID, gid: alice.GID, groups: []uint32{uint32(alice.GID)}, home: alice.Home})
	env := a.env(map[string]string{"HOME": "/root", "USER": "root", "PATH": "/usr/bin"})
	testkit.Equal(t, env, map[string]string{"HOME": alice.Home, "USER": alice.Name, "LOGNAME": alice.Name, "PATH": "/usr/bin"})

	for _, tt := range []struct {
		name string
		im   *Impersonation
		env  map[string]string
		want []error
	}{
		{"no user (a pooled kernel)", im, map[string]string{}, []error{admission.ErrForbidden}},
		{"no account", im, map[string]string{"KERNEL_USERNAME": "kgt-nobody-here"}, []error{admission.ErrForbidden, ErrNoAccount}},
		{"root's account", im, map[string]string{"KERNEL_USERNAME": "root"}, []error{admission.ErrForbidden, ErrProhibitedID}},
		{"a prohibited uid", &Impersonation{ProhibitedUIDs: []int{alice.UID}}, map[string]string{"KERNEL_USERNAME": alice.Name}, []error{admission.ErrForbidden, ErrProhibitedID}},
		{"a prohibited gid", &Impersonation{ProhibitedGIDs: []int{alice.GID}}, map[string]string{"KERNEL_USERNAME": alice.Name}, []error{admission.ErrForbidden, ErrProhibitedID}},
		{"KERNEL_UID 0 when allowed", &Impersonation{KernelIDs: true, ProhibitedUIDs: []int{0}}, map[string]string{"KERNEL_USERNAME": alice.Name, "KERNEL_UID": "0"}, []error{admission.ErrForbidden, ErrProhibitedID}},
		{"KERNEL_GID not a number", &Impersonation{KernelIDs: true}, map[string]string{"KERNEL_USERNAME": alice.Name, "KERNEL_GID": "staff"}, []error{admission.ErrBadRequest}},
		{"KERNEL_UID without an account or gid", &Impersonation{KernelIDs: true}, map[string]string{"KERNEL_USERNAME": "kgt-nobody-here", "KERNEL_UID": "5000"}, []error{admission.ErrBadRequest}},
	} {
		_, err := tt.im.accountOf(tt.env)
		for _, want := range tt.want {
			testkit.True(t, errors.Is(err, want), "%s: %v, want %v", tt.name, err, want)
		}
	}

	// Allowed, KERNEL_UID and KERNEL_GID win over the account, which then
	// lends nothing but a home of its own uid.
	ids := &Impersonation{KernelIDs: true, ProhibitedUIDs: []int{0}}
	a, err = ids.accountOf(map[string]string{"KERNEL_USERNAME": alice.Name, "KERNEL_UID": "5000", "KERNEL_GID": "5001"})
	testkit.NoError(t, err)
	testkit.Equal(t, *a, account{name: alice.Name, uid: 5000, gid: 5001, home: "/"})
	a, err = ids.accountOf(map[string]string{"KERNEL_USERNAME": alice.Name, "KERNEL_GID": "5001"})
	testkit.NoError(t, err)
	testkit.Equal(t, *a, account{name: alice.Name, uid: alice.UID, gid: 5001, home: alice.Home})

	// Pools are off for a provisioner that impersonates.
	testkit.True(t, (&Provisioner{Impersonate: im}).UserBound(kernelspecs.Spec{}), "impersonated kernels not user-bound")
	testkit.True(t, !(&Provisioner{}).UserBound(kernelspecs.Spec{}), "kernels of the gateway's user are user-bound")
}

// A detached kernel's log is in its user's directory, where the user could
// have planted a link under its name: neither kind redirects the gateway.
func TestOpenLogRefusesPlantedLinks(t *testing.T) {
	alice := unixtest.NewAccount(t, "kgt-alice")
	a := &account{name: alice.Name, uid: alice.UID, gid: alice.GID}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	testkit.NoError(t, os.WriteFile(victim, []byte("root's"), 0o600))

	fresh := filepath.Join(dir, "kernel-1.log")
	f, err := openLog(fresh, a)
	testkit.NoError(t, err)
	f.Close()
	st, err := os.Stat(fresh)
	testkit.NoError(t, err)
	testkit.Equal(t, strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid)), strconv.Itoa(alice.UID))
	f, err = openLog(fresh, a) // a restart appends to the user's log
	testkit.NoError(t, err)
	f.Close()

	sym := filepath.Join(dir, "kernel-2.log")
	testkit.NoError(t, os.Symlink(victim, sym))
	_, err = openLog(sym, a)
	testkit.True(t, errors.Is(err, syscall.ELOOP), "followed a symlink: %v", err)
	hard := filepath.Join(dir, "kernel-3.log")
	testkit.NoError(t, os.Link(victim, hard))
	_, err = openLog(hard, a)
	testkit.True(t, err != nil, "wrote to a hard link of another file")
	st, err = os.Stat(victim)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(0))
	testkit.Equal(t, st.Size(), int64(len("root's")))
}

package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// noPeers is a group whose replicas cannot reach each other (the tests
// here need only the shared store).
type noPeers struct{}

func (noPeers) Act(context.Context, string, string, string) (Model, error) {
	return Model{}, errors.New("no peers here")
}

func (noPeers) Handover(context.Context, string, string, string) (Handover, error) {
	return Handover{}, errors.New("no peers here")
}

// TestGroupMembersSeeOwners: two replicas of one store see each other, live,
// with the kernels each owns.
func TestGroupMembersSeeOwners(t *testing.T) {
	dir := t.TempDir()
	replica := func(id string) *fakeGateway {
		return newFakeGateway(t, func(c *Config) {
			files := store.FileStore{Dir: dir}
			c.Store = files
			c.KeepKernelsOnStop = true
			c.Replication = &Replication{ID: id, URL: "http://" + id, Group: files, Peers: noPeers{},
				LeaseDuration: 3 * time.Second, Sync: 100 * time.Millisecond}
		})
	}
	a, b := replica("a"), replica("b")
	testkit.True(t, (&fakeGateway{g: &Gateway{}}).g.GroupMembers() == nil, "a gateway outside a group has members")
	a.start()
	for _, f := range []*fakeGateway{a, b} {
		testkit.Eventually(t, 10*time.Second, func() error {
			got := f.g.GroupMembers()
			if len(got) != 2 {
				return fmt.Errorf("members %+v", got)
			}
			for i, want := range []MemberView{{ID: "a", URL: "http://a", Live: true, Kernels: 1}, {ID: "b", URL: "http://b", Live: true}} {
				want.Self = f == a && want.ID == "a" || f == b && want.ID == "b"
				if got[i] != want {
					return fmt.Errorf("member %d: %+v, want %+v", i, got[i], want)
				}
			}
			return nil
		})
	}
}

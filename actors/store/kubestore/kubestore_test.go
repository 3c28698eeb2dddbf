package kubestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var kube = k8stest.NewShared(k8stest.Options{})

func TestMain(m *testing.M) { os.Exit(kube.Main(m)) }

// testTimeout is the stores' Timeout here: the admission lock lasts 3 s.
const testTimeout = time.Second

// rig is a namespace of the shared cluster and a client of the test's own.
type rig struct {
	t      *testing.T
	c      *k8stest.Cluster
	ns     string
	client k8s.Interface
}

func newRig(t *testing.T) *rig {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t)) // last: after the connections close
	rc := c.RESTConfig()
	// A dialer of its own gives the client a transport of its own (client-go
	// shares transports of equal configurations), whose connections the
	// test closes.
	rc.Dial = (&net.Dialer{}).DialContext
	rc.QPS = -1 // as kernelgate's: no client-side rate limit
	hc, err := rest.HTTPClientFor(rc)
	testkit.NoError(t, err)
	t.Cleanup(func() { utilnet.CloseIdleConnectionsFor(hc.Transport) })
	client, err := k8s.NewForConfigAndClient(rc, hc)
	testkit.NoError(t, err)
	return &rig{t: t, c: c, ns: c.Namespace(t), client: client}
}

// store is replica's store in group g of the rig's namespace.
func (r *rig) store(replica string, log ...*bytes.Buffer) *Store {
	r.t.Helper()
	cfg := Config{Client: r.client, Namespace: r.ns, Group: "g", Replica: replica, Timeout: testTimeout}
	if len(log) > 0 {
		cfg.Logger = zerolog.New(&lockedBuffer{b: log[0]})
	}
	s, err := New(cfg)
	testkit.NoError(r.t, err)
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// race runs each of fs at once and returns their results.
func race(t *testing.T, fs ...func() (bool, error)) []bool {
	t.Helper()
	out := make([]bool, len(fs))
	errs := make([]error, len(fs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() {
			<-start
			out[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	testkit.NoError(t, errors.Join(errs...))
	return out
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// Two replicas race for a kernel's lease, each with a store of its own:
// exactly one wins a free or expired lease, neither wins a lease another
// holds, and its holder always renews it.
func TestLeaseRace(t *testing.T) {
	r := newRig(t)
	a, b, c := r.store("a"), r.store("b"), r.store("c")
	acquire := func(s *Store, id, holder string) func() (bool, error) {
		return func() (bool, error) { return s.Acquire(id, holder, time.Hour) }
	}
	for _, tt := range []struct {
		name   string
		before func(id string) // a's part before the race
		racers func(id string) []func() (bool, error)
		wins   int    // racers that get the lease
		holder string // who holds it after; "b|c" for either
	}{
		{"free", func(string) {}, func(id string) []func() (bool, error) {
			return []func() (bool, error){acquire(b, id, "b"), acquire(c, id, "c")}
		}, 1, "b|c"},
		{"held and fresh", func(id string) {
			ok, err := a.Acquire(id, "a", time.Hour)
			testkit.NoError(t, err)
			testkit.True(t, ok, "a could not take a free lease")
		}, func(id string) []func() (bool, error) {
			return []func() (bool, error){acquire(b, id, "b"), acquire(c, id, "c")}
		}, 0, "a"},
		{"held and expired", func(id string) {
			ok, err := a.Acquire(id, "a", time.Second)
			testkit.NoError(t, err)
			testkit.True(t, ok, "a could not take a free lease")
			testkit.Eventually(t, 5*time.Second, func() error {
				if l, err := b.Holder(id); err != nil || time.Now().Before(l.Expires) {
					return fmt.Errorf("not expired yet: %v %v", l, err)
				}
				return nil
			})
		}, func(id string) []func() (bool, error) {
			return []func() (bool, error){acquire(b, id, "b"), acquire(c, id, "c")}
		}, 1, "b|c"},
		{"its holder renews", func(id string) {
			ok, err := a.Acquire(id, "a", time.Hour)
			testkit.NoError(t, err)
			testkit.True(t, ok, "a could not take a free lease")
		}, func(id string) []func() (bool, error) {
			return []func() (bool, error){acquire(a, id, "a"), acquire(b, id, "b")}
		}, 1, "a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 {
				id := uuid.NewString()
				tt.before(id)
				won := race(t, tt.racers(id)...)
				l, err := a.Holder(id)
				testkit.NoError(t, err)
				testkit.Equal(t, count(won), tt.wins)
				testkit.True(t, strings.Contains(tt.holder, l.Holder) && l.Holder != "", "holder %q after the race", l.Holder)
				testkit.True(t, time.Until(l.Expires) > 59*time.Minute, "the holder's lease ends at %v", l.Expires)
			}
		})
	}
	// Every kernel lease of the group is read in one list.
	all, err := c.Holders()
	testkit.NoError(t, err)
	testkit.Equal(t, len(all), 4*5)
}

func TestRelease(t *testing.T) {
	r := newRig(t)
	a, b := r.store("a"), r.store("b")
	id := uuid.NewString()
	ok, err := a.Acquire(id, "a", time.Hour)
	testkit.NoError(t, err)
	testkit.True(t, ok, "a free lease was not taken")
	testkit.NoError(t, b.Release(id, "b")) // not b's: nothing happens
	l, err := b.Holder(id)
	testkit.NoError(t, err)
	testkit.Equal(t, l.Holder, "a")
	testkit.NoError(t, a.Release(id, "a"))
	l, err = b.Holder(id)
	testkit.NoError(t, err)
	testkit.Equal(t, l, store.Lease{})
	all, err := b.Holders()
	testkit.NoError(t, err)
	testkit.Equal(t, len(all), 0)
	ok, err = b.Acquire(id, "b", time.Hour)
	testkit.NoError(t, err)
	testkit.True(t, ok, "a released lease was not free")
	// a's renewal from its remembered version meets b's write: refused.
	ok, err = a.Acquire(id, "a", time.Hour)
	testkit.NoError(t, err)
	testkit.True(t, !ok, "a renewed a lease b holds")
	testkit.NoError(t, b.Release(uuid.NewString(), "b")) // no lease at all: fine

	// The kernel deleted (its lease with it) while b's renewal was on its
	// way: the renewal does not write the lease again.
	testkit.NoError(t, a.Delete(id))
	ok, err = b.Acquire(id, "b", time.Hour)
	testkit.NoError(t, err)
	testkit.True(t, !ok, "a renewal wrote a deleted lease again")
	_, err = r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-kernel-"+id, metav1.GetOptions{})
	testkit.True(t, apierrors.IsNotFound(err), "the deleted lease is back: %v", err)
	ok, err = b.Acquire(id, "b", time.Hour) // a new acquisition, not a renewal
	testkit.NoError(t, err)
	testkit.True(t, ok, "a free lease was not taken")
}

func record(ns, pod string, uid string) store.Record {
	r := store.Record{ID: uuid.NewString(), KernelName: "python3", Username: "alice", Env: map[string]string{"A": "1"},
		Connection: zmq.ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", ShellPort: 1, Key: "the-hmac-key", SignatureScheme: "hmac-sha256"},
		Started:    time.Now().UTC().Truncate(time.Second)}
	if pod != "" {
		r.ProcessInfo, _ = json.Marshal(map[string]any{"kernel_ns": ns, "assigned_host": pod, "pod_uid": uid, "assigned_ip": "127.0.10.9", "comm_port": 9})
	}
	return r
}

// Records round-trip with their keys, as labelled Secrets of the group.
func TestRecords(t *testing.T) {
	r := newRig(t)
	s := r.store("a")
	rec := record("", "", "")
	testkit.NoError(t, s.Save(rec))
	rec.Username = "alice2" // a save replaces
	testkit.NoError(t, s.Save(rec))
	got, err := s.Get(rec.ID)
	testkit.NoError(t, err)
	testkit.Equal(t, got.Username, "alice2")
	testkit.Equal(t, got.Connection.Key, "the-hmac-key")
	testkit.Equal(t, got.Env, rec.Env)
	testkit.True(t, got.Started.Equal(rec.Started), "started %v, want %v", got.Started, rec.Started)

	sec, err := r.client.CoreV1().Secrets(r.ns).Get(context.Background(), "g-kernel-"+rec.ID, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, sec.Labels, map[string]string{LabelManagedBy: "kernelgate", LabelGroup: "g", LabelRole: roleRecord, LabelKernelID: rec.ID})
	testkit.Equal(t, sec.Type, secretType)
	testkit.Equal(t, len(sec.OwnerReferences), 0) // not a pod's kernel

	// Another group's records and garbage are not this group's records.
	other, err := New(Config{Client: r.client, Namespace: r.ns, Group: "other", Timeout: testTimeout})
	testkit.NoError(t, err)
	testkit.NoError(t, other.Save(record("", "", "")))
	broken := sec.DeepCopy()
	broken.ObjectMeta = metav1.ObjectMeta{Name: "g-kernel-broken", Labels: map[string]string{LabelManagedBy: "kernelgate", LabelGroup: "g", LabelRole: roleRecord, LabelKernelID: "x"}}
	broken.Data = map[string][]byte{recordKey: []byte("{")}
	_, err = r.client.CoreV1().Secrets(r.ns).Create(context.Background(), broken, metav1.CreateOptions{})
	testkit.NoError(t, err)
	recs, err := s.Load()
	testkit.ErrorIs(t, err, store.ErrUnreadable)
	testkit.Equal(t, len(recs), 1)
	testkit.Equal(t, recs[0].ID, rec.ID)

	testkit.NoError(t, s.Delete(rec.ID))
	testkit.NoError(t, s.Delete(rec.ID)) // already gone: fine
	_, err = s.Get(rec.ID)
	testkit.ErrorIs(t, err, store.ErrNotFound)
	testkit.True(t, s.Save(store.Record{ID: "../escape"}) != nil, "a record id that is not a UUID was written")
}

// pod creates a pod that never runs (its image cannot be pulled).
func (r *rig) pod(name string) *corev1.Pod {
	r.t.Helper()
	p, err := r.client.CoreV1().Pods(r.ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "k", Image: k8stest.FailPullRegistry + "kernel"}}},
	}, metav1.CreateOptions{})
	testkit.NoError(r.t, err)
	return p
}

func (r *rig) deletePod(name string) {
	r.t.Helper()
	err := r.client.CoreV1().Pods(r.ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	testkit.NoError(r.t, err)
}

// secretGone waits until the garbage collector (or anyone) has removed a
// Secret.
func (r *rig) secretGone(name string) {
	r.t.Helper()
	testkit.Eventually(r.t, 30*time.Second, func() error {
		_, err := r.client.CoreV1().Secrets(r.ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("secret %s still there (%v)", name, err)
	})
}

// A pod kernel's record is owned by its pod in the store's namespace (the
// garbage collector removes it with the pod), and survives the kernel's
// move to a new pod (a restart); a pod elsewhere owns nothing.
func TestRecordOwnedByItsPod(t *testing.T) {
	r := newRig(t)
	s := r.store("a")
	p1 := r.pod("kernel-1")
	rec := record(r.ns, p1.Name, string(p1.UID))
	testkit.NoError(t, s.Save(rec))
	name := "g-kernel-" + rec.ID
	sec, err := r.client.CoreV1().Secrets(r.ns).Get(context.Background(), name, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, sec.OwnerReferences, []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p1.Name, UID: p1.UID}})

	elsewhere := record("another-namespace", "kernel-x", "uid-x")
	testkit.NoError(t, s.Save(elsewhere))
	sec, err = r.client.CoreV1().Secrets(r.ns).Get(context.Background(), "g-kernel-"+elsewhere.ID, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, len(sec.OwnerReferences), 0)

	// A restart: the kernel's next pod, its record saved again, the old pod
	// deleted. A canary owned by the old pod tells when the garbage
	// collector has dealt with its dependents.
	p2 := r.pod("kernel-2")
	rec.ProcessInfo = record(r.ns, p2.Name, string(p2.UID)).ProcessInfo
	testkit.NoError(t, s.Save(rec))
	canary := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "canary", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "v1", Kind: "Pod", Name: p1.Name, UID: p1.UID}}}}
	_, err = r.client.CoreV1().Secrets(r.ns).Create(context.Background(), canary, metav1.CreateOptions{})
	testkit.NoError(t, err)
	r.deletePod(p1.Name)
	r.secretGone("canary")
	got, err := s.Get(rec.ID)
	testkit.NoError(t, err)
	testkit.Equal(t, string(got.ProcessInfo), string(rec.ProcessInfo))

	// The pod gone for good (no gateway left to delete the record): the
	// garbage collector removes the record.
	r.deletePod(p2.Name)
	r.secretGone(name)
}

func TestMembers(t *testing.T) {
	r := newRig(t)
	a, b := r.store("a"), r.store("b")
	ma := store.Member{ID: "a", URL: "http://127.0.0.1:1", Connections: map[string]int{"k1": 2}, Sessions: map[string][]string{"k1": {"s1", "s2"}}}
	mb := store.Member{ID: "b", URL: "http://127.0.0.1:2"}
	testkit.NoError(t, a.Beat(ma))
	testkit.NoError(t, b.Beat(mb))
	testkit.NoError(t, a.Beat(ma)) // a renewal
	members, err := b.Members(time.Minute)
	testkit.NoError(t, err)
	testkit.Equal(t, len(members), 2)
	for _, m := range members {
		testkit.True(t, time.Since(m.Beat) < 30*time.Second, "%s beat at %v", m.ID, m.Beat)
		m.Beat = time.Time{}
		want := map[string]store.Member{"a": ma, "b": mb}[m.ID]
		testkit.Equal(t, m, want)
	}
	l, err := r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-replica-a", metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, *l.Spec.HolderIdentity, "a")
	testkit.Equal(t, l.Labels[LabelReplica], "a")

	// A replica that stopped beating leaves the members.
	testkit.Eventually(t, 10*time.Second, func() error {
		if m, err := a.Members(2 * time.Second); err != nil || len(m) > 0 {
			return fmt.Errorf("members %v, %v", m, err)
		}
		return nil
	})
	testkit.NoError(t, b.Beat(mb))
	members, err = a.Members(2 * time.Second)
	testkit.NoError(t, err)
	testkit.Equal(t, len(members), 1)
	testkit.Equal(t, members[0].ID, "b")

	// Clients too many for a Lease's annotations: written without the
	// sessions, and said so.
	big := store.Member{ID: "a", URL: ma.URL, Connections: map[string]int{"k1": 1}, Sessions: map[string][]string{}}
	for range 3000 {
		big.Sessions[uuid.NewString()] = []string{uuid.NewString(), uuid.NewString()}
	}
	testkit.ErrorIs(t, a.Beat(big), ErrMemberTruncated)
	members, err = b.Members(time.Minute)
	testkit.NoError(t, err)
	for _, m := range members {
		if m.ID == "a" {
			testkit.Equal(t, m.Connections, big.Connections)
			testkit.Equal(t, len(m.Sessions), 0)
		}
	}
	testkit.True(t, a.Beat(store.Member{ID: "Not A Name"}) != nil, "a replica id that cannot name a Lease was taken")

	// A replica silent for more than a day (a replaced pod) is let go.
	testkit.NoError(t, a.Beat(store.Member{ID: "old-pod"}))
	l, err = r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-replica-old-pod", metav1.GetOptions{})
	testkit.NoError(t, err)
	l.Spec.RenewTime = new(metav1.NewMicroTime(time.Now().Add(-26 * time.Hour)))
	_, err = r.client.CoordinationV1().Leases(r.ns).Update(context.Background(), l, metav1.UpdateOptions{})
	testkit.NoError(t, err)
	members, err = b.Members(48 * time.Hour)
	testkit.NoError(t, err)
	for _, m := range members {
		testkit.True(t, m.ID != "old-pod", "a replica silent for 26 hours is a member")
	}
	_, err = r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-replica-old-pod", metav1.GetOptions{})
	testkit.True(t, apierrors.IsNotFound(err), "the Lease of a replica silent for 26 hours is still there: %v", err)
}

// The admission lock under contention from two replicas' goroutines: one
// holder at a time, and a limit checked under it is never passed.
func TestAdmissionLock(t *testing.T) {
	r := newRig(t)
	stores := []*Store{r.store("a"), r.store("b")}
	const limit = 4
	var inside, most atomic.Int32
	var admitted atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		s := stores[i%2]
		wg.Go(func() {
			for range 2 {
				unlock, err := s.Lock()
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				recs, err := s.Load()
				if err == nil && len(recs) < limit {
					err = s.Save(store.Record{ID: uuid.NewString(), Username: "u", Pending: true, Admitted: time.Now()})
					admitted.Add(1)
				}
				inside.Add(-1)
				unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testkit.Equal(t, most.Load(), int32(1))
	testkit.Equal(t, admitted.Load(), int32(limit))
	recs, err := stores[0].Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), limit)
}

// A holder that dies leaves the lock to lapse: the next Lock gets it once
// the lease ends. One that never lapses fails Lock with ErrLockTimeout. A
// holder whose lock lapsed says so when it unlocks.
func TestAdmissionLockExpiry(t *testing.T) {
	r := newRig(t)
	var log bytes.Buffer
	dead, next := r.store("dead", &log), r.store("next")
	unlockDead, err := dead.Lock()
	testkit.NoError(t, err)
	took := time.Now()
	unlock, err := next.Lock()
	testkit.NoError(t, err)
	waited := time.Since(took)
	t.Logf("the lock of a dead holder was taken after %v (its lease: %v)", waited.Round(time.Millisecond), next.lockTTL)
	testkit.True(t, waited > next.lockTTL-time.Second && waited < next.lockWait, "waited %v", waited)
	unlockDead()
	testkit.True(t, strings.Contains(log.String(), "lapsed while held"), "no word of the lapsed lock: %s", log.String())
	unlock()

	// Held by someone who renews it for an hour: Lock gives up.
	l, err := r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-admission", metav1.GetOptions{})
	testkit.NoError(t, err)
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = new("elsewhere"), new(metav1.NowMicro()), new(int32(3600))
	_, err = r.client.CoordinationV1().Leases(r.ns).Update(context.Background(), l, metav1.UpdateOptions{})
	testkit.NoError(t, err)
	took = time.Now()
	_, err = next.Lock()
	testkit.ErrorIs(t, err, ErrLockTimeout)
	waited = time.Since(took)
	testkit.True(t, waited >= next.lockWait-time.Second && waited < next.lockWait+2*time.Second, "gave up after %v", waited)
}

// With the API server stopped (SIGSTOP), every call fails within its
// timeout, and the lock within its wait; then all works again.
func TestHungAPIServer(t *testing.T) {
	r := newRig(t)
	s := r.store("a")
	id := uuid.NewString()
	ok, err := s.Acquire(id, "a", time.Hour) // a renewal from a remembered version, below
	testkit.NoError(t, err)
	testkit.True(t, ok, "a free lease was not taken")

	testkit.NoError(t, r.c.PauseAPIServer())
	paused := true
	resume := func() {
		if paused {
			paused = false
			testkit.NoError(t, r.c.ResumeAPIServer())
		}
	}
	t.Cleanup(resume)
	calls := map[string]func() error{
		"save":    func() error { return s.Save(record("", "", "")) },
		"get":     func() error { _, err := s.Get(id); return err },
		"load":    func() error { _, err := s.Load(); return err },
		"delete":  func() error { return s.Delete(uuid.NewString()) },
		"acquire": func() error { _, err := s.Acquire(id, "a", time.Hour); return err },
		"release": func() error { return s.Release(uuid.NewString(), "a") },
		"holder":  func() error { _, err := s.Holder(id); return err },
		"holders": func() error { _, err := s.Holders(); return err },
		"beat":    func() error { return s.Beat(store.Member{ID: "a"}) },
		"members": func() error { _, err := s.Members(time.Minute); return err },
		"lock":    func() error { _, err := s.Lock(); return err },
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	took := map[string]time.Duration{}
	for name, call := range calls {
		wg.Go(func() {
			began := time.Now()
			err := call()
			mu.Lock()
			defer mu.Unlock()
			took[name] = time.Since(began)
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrLockTimeout) {
				t.Errorf("%s: %v, want a timeout", name, err)
			}
		})
	}
	wg.Wait()
	for name, d := range took {
		bound := testTimeout + time.Second
		if name == "lock" {
			bound = s.lockWait + time.Second
		}
		testkit.True(t, d < bound, "%s took %v with the API server stopped", name, d)
	}
	t.Logf("with the API server stopped: %v", took)
	resume()
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := s.Acquire(id, "a", time.Hour)
		return err
	})
	_, err = s.Holders()
	testkit.NoError(t, err)
}

// A lease's fields as kubectl shows them.
func TestLeaseFields(t *testing.T) {
	r := newRig(t)
	s := r.store("a")
	id := uuid.NewString()
	ok, err := s.Acquire(id, "a", 1500*time.Millisecond) // rounded up to 2 s
	testkit.NoError(t, err)
	testkit.True(t, ok, "a free lease was not taken")
	l, err := r.client.CoordinationV1().Leases(r.ns).Get(context.Background(), "g-kernel-"+id, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, *l.Spec.HolderIdentity, "a")
	testkit.Equal(t, *l.Spec.LeaseDurationSeconds, int32(2))
	testkit.Equal(t, *l.Spec.LeaseTransitions, int32(1))
	testkit.True(t, l.Spec.RenewTime != nil && l.Spec.AcquireTime != nil, "no renew or acquire time")
	testkit.Equal(t, l.Labels[LabelKernelID], id)
	testkit.Equal(t, l.Labels[LabelRole], roleKernel)
}

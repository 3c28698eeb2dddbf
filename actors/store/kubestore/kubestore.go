// Package kubestore keeps what the replicas of a group share in the
// Kubernetes API (KERNELGATE_KERNEL_STORE=kubernetes), for a group whose
// replicas share no file system: a store.Group on client-go. In the
// gateway's namespace:
//
//   - each kernel's record is a Secret (records hold the kernels' HMAC
//     keys), owned by the kernel's pod when that pod is in the same
//     namespace, so that the garbage collector removes what no gateway is
//     left to remove;
//   - each kernel's lease (who restarts, culls and signals it) is a
//     coordination.k8s.io/v1 Lease: holder, renew time, duration;
//   - each replica is a Lease too, renewed by its beat, carrying its URL and
//     its clients in an annotation;
//   - the admission lock is a Lease used as a mutex (see Lock).
//
// Every object is labelled app.kubernetes.io/managed-by=kernelgate and
// kernelgate.io/group=<group>, so that several groups can share a
// namespace. Every write of a lease carries the resourceVersion it read
// (optimistic concurrency): of two replicas that read the same version,
// one writes and the other gets a Conflict, reads again and sees the
// winner. Every API call has a deadline (Config.Timeout): a hung API server
// fails calls, it never holds a caller.
package kubestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/rs/zerolog"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	k8s "k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
)

// The labels and annotations of the store's objects.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kernelgate"
	LabelGroup     = "kernelgate.io/group"
	LabelKernelID  = "kernelgate.io/kernel-id"
	LabelReplica   = "kernelgate.io/replica"
	// LabelRole tells the store's objects apart: a kernel's record (a
	// Secret), a kernel's lease, a replica, the admission lock (Leases).
	LabelRole = "kernelgate.io/role"

	roleRecord    = "record"
	roleKernel    = "kernel-lease"
	roleReplica   = "replica"
	roleAdmission = "admission"

	// annotationMember holds a replica's store.Member (without its beat,
	// which is the Lease's renew time).
	annotationMember = "kernelgate.io/member"
	// recordKey is the record's key in its Secret's data.
	recordKey = "record.json"
	// secretType marks a record's Secret for whoever lists Secrets.
	secretType corev1.SecretType = "kernelgate.io/kernel-record"
	// maxMember bounds a replica's annotation: the API server refuses an
	// object whose annotations pass 256 KiB.
	maxMember = 192 << 10
)

var (
	// ErrLockTimeout reports an admission lock that another replica held
	// for longer than Lock waits.
	ErrLockTimeout = errors.New("the group's admission lock is held elsewhere")
	// ErrMemberTruncated reports a replica whose clients did not fit in its
	// Lease: it was written without its sessions (or its connections).
	ErrMemberTruncated = errors.New("the replica's clients are too many to publish")
)

// Config configures a Store.
type Config struct {
	Client k8s.Interface
	// Namespace holds every object (the gateway's, EG_NAMESPACE).
	Namespace string
	// Group names the replica group (label kernelgate.io/group); it is part
	// of every object's name, so it must be a DNS label.
	Group string
	// Replica is this replica's id, shown as the admission lock's holder.
	Replica string
	// Timeout bounds each API call. Default 5 s. The admission lock's
	// lease lasts 3 × Timeout (see Lock).
	Timeout time.Duration
	Logger  zerolog.Logger
}

// Store is a store.Group in the Kubernetes API.
type Store struct {
	cfg      Config
	secrets  coreclient.SecretInterface
	leases   coordclient.LeaseInterface
	lockTTL  time.Duration
	lockWait time.Duration

	mu sync.Mutex
	// seen is the last version this replica wrote of each lease it holds,
	// so that a renewal costs one request (an update guarded by that
	// version) instead of a read and a write.
	seen map[string]*coordv1.Lease
}

var _ store.Group = (*Store)(nil)

// New checks cfg and returns the store; it makes no request.
func New(cfg Config) (*Store, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	for _, msg := range validation.IsDNS1123Label(cfg.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", cfg.Namespace, msg))
	}
	// The longest name is <group>-kernel-<uuid>, 44 characters past the
	// group, within a DNS subdomain's 253; the group is also a label value.
	for _, msg := range validation.IsDNS1123Label(cfg.Group) {
		errs = append(errs, fmt.Errorf("group %q: %s", cfg.Group, msg))
	}
	if cfg.Replica != "" {
		errs = append(errs, validReplica(cfg.Group, cfg.Replica))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kubernetes kernel store: %w", err)
	}
	// The lock's critical section (a List and a Create, each within
	// Timeout) ends within 2 × Timeout even when the API server hangs, so
	// a live holder never outlasts its lease; a waiter waits long enough
	// for a dead holder's lease to lapse.
	ttl := (3*cfg.Timeout + time.Second - 1).Truncate(time.Second)
	return &Store{
		cfg:      cfg,
		secrets:  cfg.Client.CoreV1().Secrets(cfg.Namespace),
		leases:   cfg.Client.CoordinationV1().Leases(cfg.Namespace),
		lockTTL:  ttl,
		lockWait: ttl + cfg.Timeout,
		seen:     make(map[string]*coordv1.Lease),
	}, nil
}

// call is the context of one API call.
func (s *Store) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.Timeout)
}

// kernelName is the name of kernel id's Secret and of its Lease (two
// kinds: the names do not collide).
func (s *Store) kernelName(id string) (string, error) {
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("kernel record: bad id %q", id)
	}
	return s.cfg.Group + "-kernel-" + id, nil
}

func (s *Store) labels(role string, extra ...string) map[string]string {
	l := map[string]string{LabelManagedBy: ManagedBy, LabelGroup: s.cfg.Group, LabelRole: role}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// selector lists the group's objects of one role.
func (s *Store) selector(role string) metav1.ListOptions {
	// No resourceVersion: the list is served at the latest version (a
	// quorum read, or the watch cache once it has caught up to one), never
	// from a cache that may lag; admission counts on it.
	return metav1.ListOptions{LabelSelector: labels.SelectorFromSet(s.labels(role)).String()}
}

// Records

// Save writes the record's Secret, replacing any earlier one.
func (s *Store) Save(r store.Record) error {
	name, err := s.kernelName(r.ID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: s.labels(roleRecord, LabelKernelID, r.ID),
			OwnerReferences: s.owners(r)},
		Type: secretType,
		Data: map[string][]byte{recordKey: data},
	}
	ctx, cancel := s.call()
	defer cancel()
	if err := s.save(ctx, want); err != nil {
		return fmt.Errorf("kernel record %s: %w", r.ID, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, want *corev1.Secret) error {
	for {
		cur, err := s.secrets.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err = s.secrets.Create(ctx, want, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
				return err
			}
		case err != nil:
			return err
		case !sameOwners(cur.OwnerReferences, want.OwnerReferences):
			// The kernel has a new pod (a restart): the garbage collector
			// may be deleting the Secret for its old one, by UID. A new
			// Secret, not an update, so that such a delete misses it.
			err = s.secrets.Delete(ctx, want.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return err
			}
		default:
			next := want.DeepCopy()
			next.ResourceVersion = cur.ResourceVersion
			if _, err = s.secrets.Update(ctx, next, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// owners makes the record owned by the kernel's pod when the pod is in the
// store's namespace (an owner must be in its dependent's namespace).
func (s *Store) owners(r store.Record) []metav1.OwnerReference {
	ns, pod, uid, ok := kubernetes.PodOf(r.ProcessInfo)
	if !ok || ns != s.cfg.Namespace {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod, UID: uid}}
}

func sameOwners(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}

// Delete removes the kernel's record and its lease; missing ones are not
// an error.
func (s *Store) Delete(id string) error {
	name, err := s.kernelName(id)
	if err != nil {
		return err
	}
	ctx, cancel := s.call()
	defer cancel()
	s.forget(name)
	err = s.secrets.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kernel record %s: %w", id, err)
	}
	err = s.leases.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("lease of %s: %w", id, err)
	}
	return nil
}

// Load lists the group's records in one request.
func (s *Store) Load() ([]store.Record, error) {
	ctx, cancel := s.call()
	defer cancel()
	list, err := s.secrets.List(ctx, s.selector(roleRecord))
	if err != nil {
		return nil, fmt.Errorf("kernel records: %w", err)
	}
	out := make([]store.Record, 0, len(list.Items))
	var errs []error
	for i := range list.Items {
		r, err := decodeRecord(&list.Items[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// Get reads kernel id's record.
func (s *Store) Get(id string) (store.Record, error) {
	name, err := s.kernelName(id)
	if err != nil {
		return store.Record{}, err
	}
	ctx, cancel := s.call()
	defer cancel()
	sec, err := s.secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return store.Record{}, fmt.Errorf("%w: %s", store.ErrNotFound, id)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("kernel record %s: %w", id, err)
	}
	return decodeRecord(sec)
}

func decodeRecord(sec *corev1.Secret) (store.Record, error) {
	var r store.Record
	if err := json.Unmarshal(sec.Data[recordKey], &r); err != nil {
		return r, fmt.Errorf("%w %s: %w", store.ErrUnreadable, sec.Name, err)
	}
	if r.ID != sec.Labels[LabelKernelID] {
		return r, fmt.Errorf("%w %s: its id %q is not its label's", store.ErrUnreadable, sec.Name, r.ID)
	}
	return r, nil
}

// Leases

// Acquire takes kernel id's lease for holder, or renews it, for ttl
// (rounded up to whole seconds: a Lease's duration is in seconds).
func (s *Store) Acquire(id, holder string, ttl time.Duration) (bool, error) {
	name, err := s.kernelName(id)
	if err != nil {
		return false, err
	}
	ctx, cancel := s.call()
	defer cancel()
	ok, err := s.take(ctx, name, s.labels(roleKernel, LabelKernelID, id), holder, ttl)
	if err != nil {
		return false, fmt.Errorf("lease of %s: %w", id, err)
	}
	return ok, nil
}

// take takes or renews the lease called name for holder: it is free when
// nobody holds it or its holder's last renewal is older than its duration.
// Expiry compares the holder's renew time with this replica's clock: the
// replicas' clocks must agree to well within a lease (NTP does).
func (s *Store) take(ctx context.Context, name string, lbls map[string]string, holder string, ttl time.Duration) (bool, error) {
	secs := int32((ttl + time.Second - 1) / time.Second)
	blank := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	s.mu.Lock()
	if l, ok := s.seen[name]; ok && ptrValue(l.Spec.HolderIdentity) == holder {
		// A renewal does not write again a lease deleted since this
		// replica wrote it: its kernel was deleted (Delete) while the
		// renewal was on its way.
		blank = nil
	}
	s.mu.Unlock()
	return s.modify(ctx, name, blank, func(l *coordv1.Lease) bool {
		now := metav1.NowMicro()
		was, expires := leaseOf(l)
		if was != "" && was != holder && now.Time.Before(expires) {
			return false
		}
		if was != holder {
			l.Spec.AcquireTime = &now
			l.Spec.LeaseTransitions = new(ptrValue(l.Spec.LeaseTransitions) + 1)
		}
		l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &holder, &now, &secs
		return true
	})
}

func ptrValue[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

// leaseOf is a Lease's holder and when its hold ends.
func leaseOf(l *coordv1.Lease) (string, time.Time) {
	holder := ptrValue(l.Spec.HolderIdentity)
	if holder == "" || l.Spec.RenewTime == nil {
		return "", time.Time{}
	}
	return holder, l.Spec.RenewTime.Add(time.Duration(ptrValue(l.Spec.LeaseDurationSeconds)) * time.Second)
}

// modify has change edit the lease called name and writes it, guarded by
// the resourceVersion it was read at; change returns false to leave it be.
// A write that lost a race (Conflict) reads the lease again and asks change
// again about what the winner wrote. The lease is taken from the version
// this replica last wrote when there is one; a change refused on that
// version is asked again on a fresh read (someone else may have written
// since). A missing lease is created from blank, when given.
func (s *Store) modify(ctx context.Context, name string, blank *coordv1.Lease, change func(*coordv1.Lease) bool) (bool, error) {
	s.mu.Lock()
	cur, cached := s.seen[name]
	s.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if cur == nil {
			got, err := s.leases.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err) && blank != nil:
				next := blank.DeepCopy()
				if !change(next) {
					return false, nil
				}
				created, err := s.leases.Create(ctx, next, metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					continue
				}
				if err != nil {
					return false, err
				}
				s.remember(created)
				return true, nil
			case apierrors.IsNotFound(err):
				return false, nil
			case err != nil:
				return false, err
			}
			cur, cached = got, false
		}
		next := cur.DeepCopy()
		if !change(next) {
			if cached {
				cur = nil
				continue
			}
			s.forget(name) // not this replica's to write
			return false, nil
		}
		written, err := s.leases.Update(ctx, next, metav1.UpdateOptions{})
		switch {
		case err == nil:
			s.remember(written)
			return true, nil
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			s.forget(name)
			cur = nil
		default:
			return false, err
		}
	}
}

func (s *Store) remember(l *coordv1.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[l.Name] = l
}

func (s *Store) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, name)
}

// Release gives kernel id's lease up if holder has it.
func (s *Store) Release(id, holder string) error {
	name, err := s.kernelName(id)
	if err != nil {
		return err
	}
	ctx, cancel := s.call()
	defer cancel()
	if _, err := s.release(ctx, name, holder); err != nil {
		return fmt.Errorf("lease of %s: %w", id, err)
	}
	return nil
}

// release empties the lease called name if holder has it; held is false
// when someone else had it.
func (s *Store) release(ctx context.Context, name, holder string) (held bool, err error) {
	held = true
	_, err = s.modify(ctx, name, nil, func(l *coordv1.Lease) bool {
		if ptrValue(l.Spec.HolderIdentity) != holder {
			held = false
			return false
		}
		l.Spec.HolderIdentity, l.Spec.RenewTime = nil, nil
		return true
	})
	return held, err
}

// Holder reads kernel id's lease.
func (s *Store) Holder(id string) (store.Lease, error) {
	name, err := s.kernelName(id)
	if err != nil {
		return store.Lease{}, err
	}
	ctx, cancel := s.call()
	defer cancel()
	l, err := s.leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return store.Lease{}, nil
	}
	if err != nil {
		return store.Lease{}, fmt.Errorf("lease of %s: %w", id, err)
	}
	holder, expires := leaseOf(l)
	return store.Lease{Holder: holder, Expires: expires}, nil
}

// Holders lists the group's kernel leases in one request.
func (s *Store) Holders() (map[string]store.Lease, error) {
	ctx, cancel := s.call()
	defer cancel()
	list, err := s.leases.List(ctx, s.selector(roleKernel))
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	out := make(map[string]store.Lease, len(list.Items))
	for i := range list.Items {
		l := &list.Items[i]
		if holder, expires := leaseOf(l); holder != "" {
			out[l.Labels[LabelKernelID]] = store.Lease{Holder: holder, Expires: expires}
		}
	}
	return out, nil
}

// The admission lock

// Lock takes the group's admission lock: the Lease <group>-admission, held
// by a token new to each call, for 3 × Timeout. A Lease rather than
// optimistic concurrency on a counter because admission counts records,
// which replicas also write outside admission (a kernel's record replaces
// its placeholder); a lock serialises count-and-record whatever else
// writes. Its holder's critical section (a List and a Create, each within
// Timeout) ends before the lease does even when the API server hangs, and
// a holder that dies leaves a lease that lapses: Lock waits up to that
// lease plus one Timeout, retrying with a short backoff, then fails with
// ErrLockTimeout. A holder paused outright (SIGSTOP) past its lease can
// lose the lock while in its critical section; unlock reports that.
func (s *Store) Lock() (func(), error) {
	name := s.cfg.Group + "-admission"
	token := s.cfg.Replica + "/" + uuid.NewString()
	lbls := s.labels(roleAdmission)
	deadline := time.Now().Add(s.lockWait)
	delay := 10 * time.Millisecond
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(time.Until(deadline), s.cfg.Timeout))
		ok, err := s.take(ctx, name, lbls, token, s.lockTTL)
		cancel()
		if ok {
			return func() { s.unlock(name, token) }, nil
		}
		if err != nil {
			last = err
		}
		wait := delay/2 + rand.N(delay)
		if time.Now().Add(wait).After(deadline) {
			err := fmt.Errorf("%w (waited %v)", ErrLockTimeout, s.lockWait)
			if last != nil {
				err = fmt.Errorf("%w: %w", err, last)
			}
			return nil, err
		}
		t := time.NewTimer(wait)
		<-t.C
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// unlock releases the admission lock; one that fails to reach the API
// server leaves the lease to lapse.
func (s *Store) unlock(name, token string) {
	ctx, cancel := s.call()
	defer cancel()
	held, err := s.release(ctx, name, token)
	s.forget(name) // the next Lock has a new token: nothing to renew
	switch {
	case err != nil:
		s.cfg.Logger.Warn().Err(err).Dur("lapses_in", s.lockTTL).Msg("cannot release the group's admission lock")
	case !held:
		s.cfg.Logger.Error().Msg("the group's admission lock lapsed while held (this replica was paused): a start may have passed a limit")
	}
}

// Members

// Beat writes m's Lease: renewed now, its URL and clients in an annotation.
func (s *Store) Beat(m store.Member) error {
	if err := validReplica(s.cfg.Group, m.ID); err != nil {
		return err
	}
	name := memberName(s.cfg.Group, m.ID)
	body, truncated, err := encodeMember(m)
	if err != nil {
		return err
	}
	ctx, cancel := s.call()
	defer cancel()
	blank := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: s.labels(roleReplica, LabelReplica, m.ID)}}
	_, err = s.modify(ctx, name, blank, func(l *coordv1.Lease) bool {
		now := metav1.NowMicro()
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[annotationMember] = string(body)
		l.Spec.HolderIdentity, l.Spec.RenewTime = &m.ID, &now
		return true
	})
	if err != nil {
		return fmt.Errorf("replica %s: %w", m.ID, err)
	}
	return truncated
}

func memberName(group, id string) string { return group + "-replica-" + id }

// validReplica checks that a replica id can name its Lease and label it.
func validReplica(group, id string) error {
	errs := validation.IsDNS1123Subdomain(memberName(group, id))
	errs = append(errs, validation.IsValidLabelValue(id)...)
	if len(errs) > 0 {
		return fmt.Errorf("replica id %q: %s", id, strings.Join(errs, "; "))
	}
	return nil
}

// encodeMember is m as its annotation: without its sessions, then without
// its connections too, when it does not fit (truncated says so).
func encodeMember(m store.Member) (body []byte, truncated error, err error) {
	m.Beat = time.Time{}
	for _, drop := range []func(){func() {}, func() { m.Sessions = nil }, func() { m.Connections = nil }} {
		drop()
		if body, err = json.Marshal(m); err != nil || len(body) <= maxMember {
			break
		}
		truncated = fmt.Errorf("%w: %d bytes, %d allowed", ErrMemberTruncated, len(body), maxMember)
	}
	return body, truncated, err
}

// memberRetention is how long the Lease of a replica that stopped beating
// is kept: the replicas ask for members of the last 24 hours at most (a
// client of a replica that died is told its place was lost). A replica
// whose id was its pod's name (a Deployment's) leaves one behind at every
// replacement.
const memberRetention = 25 * time.Hour

// Members lists the replicas that beat within maxAge, and deletes the
// Leases of those silent for longer than memberRetention.
func (s *Store) Members(maxAge time.Duration) ([]store.Member, error) {
	ctx, cancel := s.call()
	defer cancel()
	list, err := s.leases.List(ctx, s.selector(roleReplica))
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	var out []store.Member
	for i := range list.Items {
		l := &list.Items[i]
		var m store.Member
		if l.Spec.RenewTime == nil || json.Unmarshal([]byte(l.Annotations[annotationMember]), &m) != nil {
			continue
		}
		m.Beat = l.Spec.RenewTime.Time
		if time.Since(m.Beat) > memberRetention {
			// Only the version read: a replica that beat since stays.
			err := s.leases.Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &l.ResourceVersion}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.cfg.Logger.Debug().Err(err).Str("replica", m.ID).Msg("cannot delete the Lease of a replica long gone")
			}
			continue
		}
		if time.Since(m.Beat) <= maxAge {
			out = append(out, m)
		}
	}
	return out, nil
}

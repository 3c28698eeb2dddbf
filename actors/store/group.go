package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound reports a kernel with no record.
var ErrNotFound = errors.New("no kernel record")

// Group is what the replicas of a group share besides the records: who
// holds each kernel's lease (the one replica that restarts, culls and
// signals it), a lock for admission (limits hold across replicas), and who
// the replicas are.
type Group interface {
	Store
	// Get returns one record.
	Get(id string) (Record, error)
	// Acquire takes the lease of kernel id for holder, or renews it, until
	// now+ttl; false when another holder's lease has not expired.
	Acquire(id, holder string, ttl time.Duration) (bool, error)
	// Release gives the lease of kernel id up, if holder has it.
	Release(id, holder string) error
	// Holder returns who holds the lease of kernel id and until when.
	Holder(id string) (Lease, error)
	// Holders returns every kernel's lease, by kernel id, in one read: the
	// replica loop reads them all on every sync, which must not cost a
	// request per kernel.
	Holders() (map[string]Lease, error)
	// Lock takes the group's admission lock; unlock releases it.
	Lock() (unlock func(), err error)
	// Beat records that m is alive; Members returns every replica that beat
	// within maxAge.
	Beat(m Member) error
	Members(maxAge time.Duration) ([]Member, error)
}

// Lease is a kernel's lease.
type Lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Member is a replica as the group knows it.
type Member struct {
	ID  string `json:"id"`
	URL string `json:"url"` // where peers reach its internal endpoints
	// Connections are its websockets per kernel, for the group's view (a
	// kernel with clients on any replica is connected).
	Connections map[string]int `json:"connections,omitempty"`
	// Sessions are its client sessions per kernel: when it dies, a replica
	// a client reconnects to knows that the client's place was lost.
	Sessions map[string][]string `json:"sessions,omitempty"`
	Beat     time.Time           `json:"beat"`
}

// The file store's group files sit beside the records: <id>.lease for a
// kernel's lease, .admission.lock, and .replicas/<replica>.json. Leases and
// the admission lock are taken under flock(2), which holds on a local file
// system and on NFSv4 (byte-range locks); a file system without working
// locks (some FUSE mounts, NFSv3 without lockd) cannot hold a group.
const (
	leaseSuffix   = ".lease"
	admissionLock = ".admission.lock"
	replicasDir   = ".replicas"
)

var _ Group = FileStore{}

// Get reads the record of kernel id.
func (s FileStore) Get(id string) (Record, error) {
	p, err := s.path(id)
	if err != nil {
		return Record{}, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Record{}, fmt.Errorf("kernel record %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("kernel record %s: %w", id, err)
	}
	return r, nil
}

// locked runs f with an exclusive flock on the file at path (created 0600).
func locked(path string, f func(*os.File) error) error {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer file.Close()
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", filepath.Base(path), err)
	}
	defer syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
	return f(file)
}

func (s FileStore) leasePath(id string) (string, error) {
	p, err := s.path(id)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, ".json") + leaseSuffix, nil
}

// Acquire takes or renews the lease under the lease file's lock.
func (s FileStore) Acquire(id, holder string, ttl time.Duration) (bool, error) {
	p, err := s.leasePath(id)
	if err != nil {
		return false, err
	}
	if err := s.ensureDir(); err != nil {
		return false, err
	}
	taken := false
	err = locked(p, func(f *os.File) error {
		l, err := readLease(f)
		if err != nil {
			return err
		}
		now := time.Now()
		if l.Holder != "" && l.Holder != holder && now.Before(l.Expires) {
			return nil
		}
		taken = true
		return writeLease(f, Lease{Holder: holder, Expires: now.Add(ttl)})
	})
	if err != nil {
		return false, fmt.Errorf("lease of %s: %w", id, err)
	}
	return taken, nil
}

// Release empties the lease when holder has it.
func (s FileStore) Release(id, holder string) error {
	p, err := s.leasePath(id)
	if err != nil {
		return err
	}
	err = locked(p, func(f *os.File) error {
		l, err := readLease(f)
		if err != nil || l.Holder != holder {
			return err
		}
		return writeLease(f, Lease{})
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Holder reads the lease without taking its lock: a reader may see the
// lease an instant old, which is what it would see an instant later anyway.
func (s FileStore) Holder(id string) (Lease, error) {
	p, err := s.leasePath(id)
	if err != nil {
		return Lease{}, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	if err := json.Unmarshal(b, &l); err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", id, err)
	}
	return l, nil
}

// Holders reads every lease file, as Holder does.
func (s FileStore) Holders() (map[string]Lease, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	out := make(map[string]Lease)
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), leaseSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		l, err := s.Holder(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.Holder != "" {
			out[id] = l
		}
	}
	return out, errors.Join(errs...)
}

func readLease(f *os.File) (Lease, error) {
	var l Lease
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return l, err
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return l, err
	}
	if json.Unmarshal(b, &l) != nil {
		return Lease{}, nil // a torn write from a crashed holder: nobody holds it
	}
	return l, nil
}

func writeLease(f *os.File, l Lease) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// Lock takes the admission lock file's flock.
func (s FileStore) Lock() (func(), error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, admissionLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("admission lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("admission lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Beat writes the member's file atomically.
func (s FileStore) Beat(m Member) error {
	dir := filepath.Join(s.Dir, replicasDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	if strings.ContainsAny(m.ID, `/\`) || m.ID == "" || m.ID[0] == '.' {
		return fmt.Errorf("replicas: bad replica id %q", m.ID)
	}
	m.Beat = time.Now()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeAtomic(dir, m.ID+".json", b)
}

// Members reads the members that beat within maxAge.
func (s FileStore) Members(maxAge time.Duration) ([]Member, error) {
	dir := filepath.Join(s.Dir, replicasDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	var out []Member
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var m Member
		if err != nil || json.Unmarshal(b, &m) != nil || time.Since(m.Beat) > maxAge {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

func TestFileStore(t *testing.T) {
	s := FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	recs, err := s.Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), 0) // no directory yet: nothing recorded

	rec := Record{ID: uuid.NewString(), KernelName: "python3", Username: "alice", Env: map[string]string{"A": "1"},
		Connection:  zmq.ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", ShellPort: 1, Key: "secret", SignatureScheme: "hmac-sha256"},
		ProcessInfo: []byte(`{"pid":42}`), Started: time.Now().UTC().Truncate(time.Second)}
	testkit.NoError(t, s.Save(rec))
	rec.Username = "alice2" // a save replaces
	testkit.NoError(t, s.Save(rec))
	dir, err := os.Stat(s.Dir)
	testkit.NoError(t, err)
	testkit.Equal(t, dir.Mode().Perm(), os.FileMode(0o700))
	file, err := os.Stat(filepath.Join(s.Dir, rec.ID+".json"))
	testkit.NoError(t, err)
	testkit.Equal(t, file.Mode().Perm(), os.FileMode(0o600))

	// Garbage next to it is reported and skipped.
	testkit.NoError(t, os.WriteFile(filepath.Join(s.Dir, "broken.json"), []byte("{"), 0o600))
	testkit.NoError(t, os.WriteFile(filepath.Join(s.Dir, uuid.NewString()+".json"), []byte(`{"kernel_id":"elsewhere"}`), 0o600))
	recs, err = s.Load()
	testkit.True(t, err != nil, "unreadable records were not reported")
	testkit.Equal(t, len(recs), 1)
	testkit.Equal(t, recs[0].Username, "alice2")
	testkit.Equal(t, recs[0].Connection.Key, "secret")
	testkit.Equal(t, recs[0].Started.Equal(rec.Started), true)

	testkit.NoError(t, s.Delete(rec.ID))
	testkit.NoError(t, s.Delete(rec.ID)) // already gone: fine
	testkit.True(t, s.Save(Record{ID: "../escape"}) != nil, "a record id that is not a UUID was written")
	testkit.True(t, s.Delete("../escape") != nil, "a record id that is not a UUID was accepted")
}

func TestFileStoreLeases(t *testing.T) {
	s := FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	id := uuid.NewString()
	for _, step := range []struct {
		holder string
		ttl    time.Duration
		want   bool
	}{
		{"a", time.Hour, true},             // free
		{"b", time.Hour, false},            // a's, not expired
		{"a", 50 * time.Millisecond, true}, // a renews, shorter
		{"b", time.Hour, false},            // still a's
		{"", 0, false},                     // (wait for a's lease to expire)
		{"b", time.Hour, true},             // expired: b takes it
	} {
		if step.holder == "" {
			testkit.Eventually(t, time.Second, func() error {
				if l, _ := s.Holder(id); time.Now().Before(l.Expires) {
					return errors.New("not expired")
				}
				return nil
			})
			continue
		}
		got, err := s.Acquire(id, step.holder, step.ttl)
		testkit.NoError(t, err)
		testkit.Equal(t, got, step.want)
	}
	l, err := s.Holder(id)
	testkit.NoError(t, err)
	testkit.Equal(t, l.Holder, "b")
	all, err := s.Holders()
	testkit.NoError(t, err)
	testkit.Equal(t, all, map[string]Lease{id: l})
	testkit.NoError(t, s.Release(id, "a")) // not a's: nothing happens
	l, _ = s.Holder(id)
	testkit.Equal(t, l.Holder, "b")
	testkit.NoError(t, s.Release(id, "b"))
	l, _ = s.Holder(id)
	testkit.Equal(t, l.Holder, "")
	got, err := s.Acquire(id, "a", time.Hour)
	testkit.NoError(t, err)
	testkit.True(t, got, "a released lease was not free")
}

// Concurrent acquisitions of a free lease: exactly one wins.
func TestFileStoreLeaseHasOneWinner(t *testing.T) {
	s := FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	id := uuid.NewString()
	var mu sync.Mutex
	winners := 0
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Acquire(id, fmt.Sprint("r", i), time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	testkit.Equal(t, winners, 1)
}

func TestFileStoreAdmissionLockAndMembers(t *testing.T) {
	s := FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	unlock, err := s.Lock()
	testkit.NoError(t, err)
	second := make(chan struct{})
	go func() {
		u, err := s.Lock()
		if err == nil {
			u()
		}
		close(second)
	}()
	select {
	case <-second:
		t.Fatal("a second holder got the admission lock")
	case <-time.After(100 * time.Millisecond): // bounded wait: the lock must hold it
	}
	unlock()
	testkit.Recv(t, second, 5*time.Second)

	testkit.NoError(t, s.Beat(Member{ID: "r1", URL: "http://127.0.0.1:1", Connections: map[string]int{"k": 2}}))
	testkit.NoError(t, s.Beat(Member{ID: "r2", URL: "http://127.0.0.1:2"}))
	ms, err := s.Members(time.Minute)
	testkit.NoError(t, err)
	testkit.Equal(t, len(ms), 2)
	testkit.True(t, s.Beat(Member{ID: "../evil"}) != nil, "a replica id with a path was accepted")
	recs, err := s.Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), 0) // group files are not records
	_, err = s.Get(uuid.NewString())
	testkit.ErrorIs(t, err, ErrNotFound)
}

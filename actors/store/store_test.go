package store

import (
	"os"
	"path/filepath"
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

// Package store keeps kernel records: what outlives a gateway process of
// each kernel (its id, connection info with keys, environment, the
// provisioner's process info), so that a restarted gateway, or another
// replica, takes the kernel back (EG's kernel session persistence).
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/privatedir"
	"github.com/kernelgate/kernelgate/zmq"
)

// Record is what outlives the gateway process of one kernel, so that a
// restarted gateway can take the kernel back (EG's kernel session).
type Record struct {
	ID         string             `json:"kernel_id"`
	KernelName string             `json:"kernel_name"`
	Username   string             `json:"username"`
	Connection zmq.ConnectionInfo `json:"connection_info"`
	// Env is the kernel's environment, for its restarts.
	Env map[string]string `json:"env"`
	// ProcessInfo is the provisioner's, to find the process again.
	ProcessInfo json.RawMessage `json:"process_info"`
	Started     time.Time       `json:"started"`
	// Pending marks a kernel admitted and not launched yet: in a replica
	// group it counts against the limits from admission on, and one older
	// than its launch could take is ignored.
	Pending bool `json:"pending,omitempty"`
	// Admitted is when a pending kernel was admitted.
	Admitted time.Time `json:"admitted,omitzero"`
}

// Store keeps kernel records. Its methods block (a disk, an API server):
// the actors call them from a kernel's runner, never inside Receive.
type Store interface {
	Save(Record) error
	Delete(id string) error
	// Load returns every record; unreadable ones are skipped and reported
	// in an error that wraps ErrUnreadable. An error that does not means
	// nothing could be read (a disk, an API server that failed).
	Load() ([]Record, error)
}

// ErrUnreadable reports records that Load skipped, beside those it read.
var ErrUnreadable = errors.New("unreadable kernel record")

// FileStore keeps one file per kernel, <Dir>/<kernel id>.json, written
// atomically and readable by the gateway's user only (records hold the
// kernels' HMAC keys). EG's file store keeps its kernel sessions likewise,
// in <persistence root>/kernel_sessions.
type FileStore struct{ Dir string }

func (s FileStore) path(id string) (string, error) {
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("kernel record: bad id %q", id)
	}
	return filepath.Join(s.Dir, id+".json"), nil
}

// Save writes the record, replacing any earlier one.
func (s FileStore) Save(r Record) error {
	p, err := s.path(r.ID)
	if err != nil {
		return err
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(s.Dir, filepath.Base(p), b); err != nil {
		return fmt.Errorf("kernel record %s: %w", r.ID, err)
	}
	return nil
}

// ensureDir makes the records' directory, this user's alone.
func (s FileStore) ensureDir() error {
	if err := privatedir.Ensure(s.Dir); err != nil {
		return fmt.Errorf("kernel records: %w", err)
	}
	return nil
}

// writeAtomic writes b to dir/name through a synced temporary file and a
// rename, so that a reader sees the old content or the new, never a part.
func writeAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Delete removes the record; a missing one is not an error.
func (s FileStore) Delete(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("kernel record %s: %w", id, err)
	}
	if lp, err := s.leasePath(id); err == nil {
		os.Remove(lp)
	}
	return nil
}

// Load reads every record in Dir.
func (s FileStore) Load() ([]Record, error) {
	entries, err := os.ReadDir(s.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel records: %w", err)
	}
	var out []Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, name))
		var r Record
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err == nil && r.ID+".json" != name {
			err = errors.New("id does not match the file name")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w %s: %w", ErrUnreadable, name, err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

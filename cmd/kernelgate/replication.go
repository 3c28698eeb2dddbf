package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/store"
	kghttp "github.com/kernelgate/kernelgate/http"
)

// replicationConfig is the settings of a replica group.
type replicationConfig struct {
	Mode          string
	URL           string
	Token         string
	LeaseDuration time.Duration
}

func replicationSettings(s *settings, c *replicationConfig) {
	s.String(&c.Mode, "availability-mode", "", "standalone or replication (a group of replicas sharing EG_PERSISTENCE_ROOT, any of which serves any kernel); empty = replication when --kernel-session-persistence is on, as in EG, and a mode turns persistence on", "EG_AVAILABILITY_MODE")
	s.String(&c.URL, "replica-url", "", "where the other replicas reach this one (http[s]://host:port[/base]); empty = the address it listens on", "KERNELGATE_REPLICA_URL")
	s.String(&c.Token, "replica-token", "", "secret the replicas of a group share for their internal endpoints (forwarded actions, session handovers); empty = the auth token", "KERNELGATE_REPLICA_TOKEN")
	s.Seconds(&c.LeaseDuration, "lease-duration", 15*time.Second, "seconds a kernel's owner may go silent before another replica takes the kernel over", "KERNELGATE_LEASE_DURATION")
}

// replicated reports whether the settings make a replica group, and fills
// in what EG implies: a mode turns persistence on, persistence alone means
// replication.
func (c *serveConfig) replicated() (bool, error) {
	switch strings.ToLower(c.Replication.Mode) {
	case "":
		return c.Persistence, nil
	case "standalone":
		c.Persistence = true
		return false, nil
	case "replication":
		c.Persistence = true
		return true, nil
	}
	return false, fmt.Errorf("availability mode %q: want standalone or replication", c.Replication.Mode)
}

// replication builds this gateway's part in its group; listen is the
// address it serves on, for peers when no URL is set.
func (c *serveConfig) replication(group store.Group, listen net.Addr, peerTLS *tls.Config) (*actors.Replication, string, error) {
	r := c.Replication
	token := r.Token
	if token == "" {
		token = c.AuthToken
	}
	if c.InstanceID == "" {
		return nil, "", errors.New("replication: no --instance-id")
	}
	url := r.URL
	if url == "" {
		scheme := "http"
		if c.Security.CertFile != "" {
			scheme = "https"
		}
		url = scheme + "://" + listen.String() + strings.TrimRight(c.BaseURL, "/")
	}
	return &actors.Replication{ID: c.InstanceID, URL: url, Group: group, LeaseDuration: r.LeaseDuration,
		Peers: kghttp.NewReplicaClient(token, peerTLS)}, token, nil
}

// handoverWait waits, until deadline, for the other replicas to ask where
// the sessions of this one's clients stood.
func handoverWait(gw *actors.Gateway, deadline time.Time) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for gw.PendingHandovers() > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
}

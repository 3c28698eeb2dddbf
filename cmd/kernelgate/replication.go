package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/actors/store/kubestore"
	kghttp "github.com/kernelgate/kernelgate/http"
	"github.com/rs/zerolog"
	k8s "k8s.io/client-go/kubernetes"
)

// replicationConfig is the settings of a replica group, and where kernel
// records are kept.
type replicationConfig struct {
	Mode          string
	URL           string
	Token         string
	LeaseDuration time.Duration
	Store         string
	Group         string
	StoreTimeout  time.Duration
}

func replicationSettings(s *settings, c *replicationConfig) {
	s.String(&c.Mode, "availability-mode", "", "standalone or replication (a group of replicas sharing a kernel store, EG_PERSISTENCE_ROOT or --kernel-store kubernetes, any of which serves any kernel); empty = replication when --kernel-session-persistence is on, as in EG, and a mode turns persistence on", "EG_AVAILABILITY_MODE")
	s.String(&c.URL, "replica-url", "", "where the other replicas reach this one (http[s]://host:port[/base]); empty = the address it listens on", "KERNELGATE_REPLICA_URL")
	s.String(&c.Token, "replica-token", "", "secret the replicas of a group share for their internal endpoints (forwarded actions, session handovers); empty = the auth token", "KERNELGATE_REPLICA_TOKEN")
	s.Seconds(&c.LeaseDuration, "lease-duration", 15*time.Second, "seconds a kernel's owner may go silent before another replica takes the kernel over", "KERNELGATE_LEASE_DURATION")
	s.String(&c.Store, "kernel-store", storeFile, "where kernel records, and a group's leases and members, are kept: file (under --persistence-root) or kubernetes (Secrets and Leases in --namespace; needs --kernel-session-persistence or --availability-mode)", "KERNELGATE_KERNEL_STORE")
	s.String(&c.Group, "replica-group", "kernelgate", "the group's name in the kubernetes kernel store (label kernelgate.io/group, a DNS label): replicas in one --namespace with one name share their kernels", "KERNELGATE_REPLICA_GROUP")
	s.Seconds(&c.StoreTimeout, "kernel-store-timeout", 5*time.Second, "seconds one request of the kubernetes kernel store may take (the admission lock lasts three times as long)", "KERNELGATE_KERNEL_STORE_TIMEOUT")
}

// The kernel stores.
const (
	storeFile       = "file"
	storeKubernetes = "kubernetes"
)

// kernelStore builds the store of kernel records (a Group, for a replica
// group as well as for one gateway) that --kernel-store names.
func (c *serveConfig) kernelStore(log zerolog.Logger) (store.Group, error) {
	r := c.Replication
	switch r.Store {
	case storeFile:
		return store.FileStore{Dir: filepath.Join(c.PersistenceRoot, "kernel_sessions")}, nil
	case storeKubernetes:
	default:
		return nil, fmt.Errorf("--kernel-store %q: want %s or %s", r.Store, storeFile, storeKubernetes)
	}
	if !c.Persistence {
		return nil, fmt.Errorf("--kernel-store %s keeps kernel records, which nothing asks for: add --kernel-session-persistence or --availability-mode", storeKubernetes)
	}
	rest, _, err := kubernetes.ClusterConfig(c.Kubernetes.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kernel-store %s: %w", storeKubernetes, err)
	}
	// No client-side rate limit: the store's requests are bounded by their
	// callers' pace (renewals, one sync a second, admissions), and a limiter
	// that held a renewal past its lease would hand the kernel to another
	// replica. The API server's priority and fairness protects it.
	rest.QPS = -1
	client, err := k8s.NewForConfig(rest)
	if err != nil {
		return nil, fmt.Errorf("--kernel-store %s: %w", storeKubernetes, err)
	}
	g, err := kubestore.New(kubestore.Config{Client: client, Namespace: c.Kubernetes.Namespace, Group: r.Group,
		Replica: c.InstanceID, Timeout: r.StoreTimeout, Logger: log.With().Str("component", "kernel-store").Logger()})
	if err != nil {
		return nil, err
	}
	log.Info().Str("api_server", rest.Host).Str("namespace", c.Kubernetes.Namespace).Str("group", r.Group).Msg("kernel records in Kubernetes")
	return g, nil
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

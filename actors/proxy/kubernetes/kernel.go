package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// processInfo finds a kernel's pod again; EG's field names where it has
// them.
type processInfo struct {
	Namespace       string    `json:"kernel_ns"`
	DeleteNamespace bool      `json:"delete_ns"`
	Pod             string    `json:"assigned_host"`
	UID             types.UID `json:"pod_uid"`
	IP              string    `json:"assigned_ip"`
	CommPort        int       `json:"comm_port"`
	PID             int       `json:"pid"`
	PGID            int       `json:"pgid"`
}

// PodOf reads which pod a kernel's process info (as this provisioner
// records it) names; ok is false for any other provisioner's kernel. The
// Kubernetes kernel store makes a kernel's record owned by its pod.
func PodOf(info json.RawMessage) (namespace, name string, uid types.UID, ok bool) {
	var pi processInfo
	if json.Unmarshal(info, &pi) != nil || pi.Namespace == "" || pi.Pod == "" || pi.UID == "" {
		return "", "", "", false
	}
	return pi.Namespace, pi.Pod, pi.UID, true
}

// Kernel is a kernel in a pod: reached at the pod's IP, signalled through
// its launcher's comm port, ended by its pod's end (from the informer) or
// by a refused comm port.
type Kernel struct {
	p        *Provisioner
	remote   *remote.Kernel
	info     processInfo
	watch    *podWatch
	launcher *launcherProc // argv mode, if it still runs
	log      zerolog.Logger
}

var _ proxy.Kernel = (*Kernel)(nil)

func (p *Provisioner) kernel(payload remote.Payload, info processInfo, w *podWatch, lp *launcherProc, log zerolog.Logger) *Kernel {
	raw, _ := json.Marshal(info) // plain fields: cannot fail
	k := &Kernel{p: p, info: info, watch: w, launcher: lp, log: log.With().Str("pod", info.Pod).Logger()}
	k.remote = remote.NewKernel(payload, info.IP, remote.KernelOptions{
		CommTimeout: p.cfg.CommTimeout, ProcessInfo: raw, Cleanup: k.clear,
	})
	return k
}

func (k *Kernel) ConnectionInfo() zmq.ConnectionInfo { return k.remote.ConnectionInfo() }
func (k *Kernel) Exited() <-chan struct{}            { return k.remote.Exited() }
func (k *Kernel) ExitErr() error                     { return k.remote.ExitErr() }
func (k *Kernel) ProcessInfo() json.RawMessage       { return k.remote.ProcessInfo() }

// Signal sends sig through the launcher's comm port. SIGKILL also deletes
// the pod, as EG does: a kill must end the kernel even when its launcher
// cannot be reached.
func (k *Kernel) Signal(sig syscall.Signal) error {
	if sig != syscall.SIGKILL {
		return k.remote.Signal(sig)
	}
	k.remote.Signal(sig)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return k.p.deletePod(ctx, k.info.Namespace, k.info.Pod, k.info.UID)
}

// Cleanup tells the launcher to stop, if the pod still runs, then deletes
// the pod and waits until it is gone (the kernel's next pod has its name).
func (k *Kernel) Cleanup() error {
	select {
	case <-k.watch.ended:
		k.remote.End(errors.New("the kernel was stopped"))
		return k.clear()
	default:
		return k.remote.Cleanup()
	}
}

// clear deletes the kernel's pod and ends its watch.
func (k *Kernel) clear() error {
	defer k.p.unwatch(k.watch)
	k.launcher.kill()
	k.p.removeTemplateFile(k.watch.kernelID)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if _, _, gone := k.watch.state(); !gone {
		if err := k.p.deletePod(ctx, k.info.Namespace, k.info.Pod, k.info.UID); err != nil {
			return err
		}
	}
	for {
		if _, _, gone := k.watch.state(); gone {
			return nil
		}
		select {
		case <-k.watch.changed:
		case <-ctx.Done():
			return fmt.Errorf("pod %s/%s deleted but still listed after %v", k.info.Namespace, k.info.Pod, apiTimeout)
		}
	}
}

// Recover takes back a kernel an earlier gateway process launched: its
// pod must still run, at the recorded IP, and its launcher answer on the
// comm port. The namespace made for it stays the kernel's to delete.
func (p *Provisioner) Recover(ctx context.Context, req proxy.RecoverRequest) (proxy.Kernel, error) {
	var info processInfo
	if err := json.Unmarshal(req.ProcessInfo, &info); err != nil || info.Pod == "" || info.UID == "" || info.IP == "" || info.CommPort == 0 {
		return nil, fmt.Errorf("%w: unreadable process info", proxy.ErrGone)
	}
	if err := p.watching(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrGone, err)
	}
	obj, ok, _ := p.informer.pods.Core().V1().Pods().Informer().GetIndexer().GetByKey(info.Namespace + "/" + info.Pod)
	pod, _ := obj.(*corev1.Pod)
	switch {
	case !ok || pod == nil || pod.UID != info.UID:
		return nil, fmt.Errorf("%w: pod %s/%s is not there any more", proxy.ErrGone, info.Namespace, info.Pod)
	case pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != info.IP:
		return nil, fmt.Errorf("%w: pod %s/%s: %s, IP %q", proxy.ErrGone, info.Namespace, info.Pod, describe(pod), pod.Status.PodIP)
	}
	w := newPodWatch(req.KernelID)
	p.mu.Lock()
	if p.kernels[req.KernelID] != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: kernel %s is known already", proxy.ErrGone, req.KernelID)
	}
	p.kernels[req.KernelID] = &kernelState{namespace: info.Namespace, ownNamespace: info.DeleteNamespace, watch: w}
	p.listen(w, info.Namespace, info.Pod)
	p.mu.Unlock()
	w.adopt(pod)
	payload := remote.Payload{ConnectionInfo: req.Connection, KernelID: req.KernelID,
		CommPort: remote.Int(info.CommPort), PID: remote.Int(info.PID), PGID: remote.Int(info.PGID)}
	k := p.kernel(payload, info, w, nil, req.Logger)
	if err := k.remote.Poll(); err != nil {
		p.unwatch(w)
		p.mu.Lock()
		delete(p.kernels, req.KernelID)
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", proxy.ErrGone, err)
	}
	w.endWith(k.remote.End)
	k.log.Info().Msg("kernel pod recovered")
	return k, nil
}

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// launch is one launch of a kernel, from its namespace to its report.
type launch struct {
	p    *Provisioner
	req  proxy.LaunchRequest
	env  map[string]string // the kernel's, with EG's defaults (KERNEL_NAMESPACE, KERNEL_POD_NAME, …)
	args remote.LaunchArgs
	log  zerolog.Logger

	namespace     string
	watch         *podWatch
	first         bool          // the kernel's first launch in this process
	madeNamespace bool          // this launch made the kernel's namespace
	launcher      *launcherProc // the kernelspec's argv, in argv mode
	started       time.Time
}

// Launch makes the kernel's pod (and its namespace, the first time) and
// returns once the pod runs and its launcher has reported. A pod that
// cannot run fails the launch at once (ErrPodFailed) and is deleted, with
// a namespace this launch made.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	mode, err := launchMode(req.Spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	env, makeNamespace, err := p.kernelConfig(req.Spec).KernelEnv(req.Env, req.KernelID)
	if err != nil {
		if r := refused(err); r != nil {
			return nil, r
		}
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	waiter, args, err := p.cfg.Listener.Prepare(req, p.cfg.PortRange, p.cfg.MinPortRangeSize)
	if err != nil {
		return nil, err
	}
	defer waiter.Close()
	l := &launch{p: p, req: req, env: env, namespace: env["KERNEL_NAMESPACE"], started: time.Now(),
		log: req.Logger.With().Str("namespace", env["KERNEL_NAMESPACE"]).Str("launch", mode).Logger(), args: args}
	if err := l.begin(); err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	k, err := l.run(ctx, mode, makeNamespace, waiter)
	if err != nil {
		l.abort()
		if r := refused(err); r != nil {
			return nil, r
		}
		return nil, fmt.Errorf("%w: KernelID: '%s' %w", proxy.ErrLaunch, req.KernelID, err)
	}
	l.log.Info().Str("pod", k.info.Pod).Str("pod_ip", k.info.IP).Int("comm_port", k.info.CommPort).
		Dur("took", time.Since(l.started)).Msg("kernel pod running; its launcher reported")
	return k, nil
}

func (l *launch) run(ctx context.Context, mode string, makeNamespace bool, waiter *remote.Waiter) (*Kernel, error) {
	// A template that fails, or refuses what the client asked for, costs
	// no request.
	var objs *podtemplate.PodObjects
	if mode == LaunchNative {
		var err error
		if objs, err = l.render(); err != nil {
			return nil, err
		}
	}
	if err := l.p.watching(ctx); err != nil {
		return nil, err
	}
	if makeNamespace && !l.ownsNamespace() {
		if err := l.p.createNamespace(ctx, l.namespace, l.req.KernelID, l.env["KERNEL_SERVICE_ACCOUNT_NAME"]); err != nil {
			return nil, err
		}
		l.madeNamespace = true
		l.setOwnNamespace(true)
		l.log.Info().Msg("kernel namespace created")
	}
	var err error
	switch mode {
	case LaunchNative:
		err = l.create(ctx, objs)
	case LaunchArgv:
		err = l.startLauncher()
	}
	if err != nil {
		return nil, err
	}
	payload, pod, err := l.wait(ctx, waiter)
	if err != nil {
		return nil, err
	}
	info := processInfo{Namespace: pod.Namespace, DeleteNamespace: l.ownsNamespace(), Pod: pod.Name, UID: pod.UID,
		IP: pod.Status.PodIP, CommPort: int(payload.CommPort), PID: int(payload.PID), PGID: int(payload.PGID)}
	k := l.p.kernel(payload, info, l.watch, l.launcher, l.log)
	// The comm port confirms that the pod's IP is where the kernel is.
	if err := k.remote.Poll(); err != nil {
		return nil, fmt.Errorf("the kernel reported from pod %s/%s, but its comm port at %s does not answer: %w",
			pod.Namespace, pod.Name, k.remote.CommAddress(), err)
	}
	l.watch.endWith(k.remote.End)
	return k, nil
}

// begin claims the kernel's state and watches for its pod.
func (l *launch) begin() error {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	st, ok := p.kernels[l.req.KernelID]
	if !ok {
		st = &kernelState{}
		p.kernels[l.req.KernelID] = st
		l.first = true
	}
	if st.watch != nil {
		return errors.New("another launch of this kernel is in progress")
	}
	st.namespace = l.namespace
	l.watch = newPodWatch(l.req.KernelID)
	st.watch = l.watch
	// EG's templates name the pod KERNEL_POD_NAME: its events may come
	// before the pod does.
	p.listen(l.watch, l.namespace, l.env["KERNEL_POD_NAME"])
	return nil
}

func (l *launch) ownsNamespace() bool {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	st := l.p.kernels[l.req.KernelID]
	return st != nil && st.ownNamespace
}

func (l *launch) setOwnNamespace(own bool) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if st := l.p.kernels[l.req.KernelID]; st != nil {
		st.ownNamespace = own
	}
}

// wait waits until the pod runs and its launcher has reported, or the pod
// cannot run, or the launch times out.
func (l *launch) wait(ctx context.Context, waiter *remote.Waiter) (remote.Payload, *corev1.Pod, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	payloads := make(chan remote.Payload, 1)
	go func() {
		if pl, err := waiter.Wait(ctx); err == nil {
			payloads <- pl
		}
	}()
	var (
		payload        *remote.Payload
		launcherExited <-chan struct{}
		launcherDone   bool
	)
	if l.launcher != nil {
		launcherExited = l.launcher.done
	}
	for {
		pod, warning, gone := l.watch.state()
		if pod != nil && !l.watch.adopted() && pod.DeletionTimestamp == nil {
			// Argv mode: the kernel's first live pod is the one its
			// launcher made.
			l.watch.adopt(pod)
			if err := l.p.label(ctx, pod); err != nil {
				l.log.Warn().Err(err).Msg("the kernel's pod lacks this gateway's labels: a Sweep after a crash will not find it")
			}
		}
		if pod != nil && l.watch.adopted() {
			why := cannotRun(pod, l.p.cfg.WaitUnschedulable)
			if gone {
				why = "the pod was deleted"
			}
			if why != "" {
				return remote.Payload{}, nil, fmt.Errorf("%w: pod %s/%s: %s%s", ErrPodFailed, pod.Namespace, pod.Name, why, lastWarning(warning, why))
			}
			if payload != nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" {
				return *payload, pod, nil
			}
		}
		select {
		case <-l.watch.changed:
		case pl := <-payloads:
			payload = &pl
		case <-launcherExited:
			launcherExited = nil
			if err := l.launcher.err; err != nil {
				return remote.Payload{}, nil, fmt.Errorf("the kernelspec's launcher failed (%w): %s", err, l.launcher.output())
			}
			launcherDone = true
		case <-ctx.Done():
			name := l.namespace + "/" + l.env["KERNEL_POD_NAME"]
			if pod != nil {
				name = pod.Namespace + "/" + pod.Name
			}
			what := "pod " + name + ": " + describe(pod) + lastWarning(warning, "")
			switch {
			case pod == nil && launcherDone:
				what += fmt.Sprintf(" (the kernelspec's launcher exited without making a pod labelled %s=%s, component=kernel)", LabelKernelID, l.req.KernelID)
			case payload == nil:
				what += "; its launcher has not reported"
			}
			return remote.Payload{}, nil, fmt.Errorf("launch timeout due to: waited too long (%s) for %s: %w",
				time.Since(l.started).Round(100*time.Millisecond), what, context.Cause(ctx))
		}
	}
}

func lastWarning(warning, said string) string {
	if warning == "" || strings.Contains(said, warning) {
		return ""
	}
	return "; last warning event: " + warning
}

// abortTimeout bounds the clean-up of a failed launch, which its answer
// waits for: what an API server that does not answer keeps is deleted by
// the next gateway's Sweep.
const abortTimeout = 10 * time.Second

// abort undoes a launch that failed: its launcher, its pod, the namespace
// it made, and the kernel's state if this was its first launch.
func (l *launch) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	l.launcher.kill()
	p := l.p
	if pod, _, gone := l.watch.state(); pod != nil && l.watch.adopted() && !gone {
		if err := p.deletePod(ctx, pod.Namespace, pod.Name, pod.UID); err != nil {
			l.log.Warn().Err(err).Msg("deleting the kernel's pod after its launch failed")
		}
	} else if l.launcher != nil {
		// The launcher may have made a pod nobody has seen yet.
		zero := int64(0)
		err := p.client.CoreV1().Pods(l.namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
			metav1.ListOptions{LabelSelector: LabelKernelID + "=" + l.req.KernelID})
		if err != nil && !apierrors.IsNotFound(err) {
			l.log.Warn().Err(err).Msg("deleting the kernel's pods after its launch failed")
		}
	}
	if l.madeNamespace {
		if err := p.deleteNamespace(ctx, l.namespace); err != nil {
			l.log.Warn().Err(err).Msg("deleting the kernel's namespace after its launch failed")
		}
		l.setOwnNamespace(false)
	}
	p.unwatch(l.watch)
	if l.first {
		p.mu.Lock()
		delete(p.kernels, l.req.KernelID)
		p.mu.Unlock()
	}
}

// unwatch ends a launch's watch.
func (p *Provisioner) unwatch(w *podWatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key := range w.keys {
		if p.pods[key] == w {
			delete(p.pods, key)
		}
	}
	if st := p.kernels[w.kernelID]; st != nil && st.watch == w {
		st.watch = nil
	}
}

// deletePod deletes a kernel's pod at once (grace period 0, as EG); one
// that is gone, or replaced by another of its name, is fine.
func (p *Provisioner) deletePod(ctx context.Context, namespace, name string, uid types.UID) error {
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	err := p.client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
		PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// label adds kernelgate's labels to a pod an argv launcher made.
func (p *Provisioner) label(ctx context.Context, pod *corev1.Pod) error {
	if pod.Labels[LabelManagedBy] == managedBy && pod.Labels[LabelInstance] == p.cfg.InstanceID {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q,%q:%q}}}`, LabelManagedBy, managedBy, LabelInstance, p.cfg.InstanceID)
	_, err := p.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("labelling pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// launchMode is the kernelspec's process_proxy.config "launch".
func launchMode(spec kernelspecs.Spec) (string, error) {
	switch m := spec.ProcessProxy.Config["launch"]; m {
	case nil, "", LaunchNative:
		return LaunchNative, nil
	case LaunchArgv:
		return LaunchArgv, nil
	default:
		return "", fmt.Errorf("kernelspec %s: process_proxy.config.launch %v: want %q or %q", spec.Name, m, LaunchNative, LaunchArgv)
	}
}

// kernelConfig is the gateway's kernel settings with the kernelspec's
// images, which win over EG_KERNEL_IMAGE and EG_KERNEL_EXECUTOR_IMAGE.
func (p *Provisioner) kernelConfig(spec kernelspecs.Spec) podtemplate.Config {
	c := p.cfg.Kernel
	if s, ok := spec.ProcessProxy.Config["image_name"].(string); ok && s != "" {
		c.Image = s
	}
	if s, ok := spec.ProcessProxy.Config["executor_image_name"].(string); ok && s != "" {
		c.ExecutorImage = s
	}
	return c
}

// refused is what the client is told of a template error caused by what
// it asked for: a prohibited uid or host access is forbidden (403, as EG
// answers a prohibited uid), a malformed KERNEL_VOLUMES a bad request (400;
// EG fails with 500). Other errors are the gateway's: nil.
func refused(err error) error {
	switch {
	case errors.Is(err, podtemplate.ErrInvalidID), errors.Is(err, podtemplate.ErrForbidden):
		return fmt.Errorf("%w: %w", admission.ErrForbidden, err)
	case errors.Is(err, podtemplate.ErrStructuredVar), errors.Is(err, podtemplate.ErrUnsupportedYAML):
		return fmt.Errorf("%w: %w", admission.ErrBadRequest, err)
	}
	return nil
}

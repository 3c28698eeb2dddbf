package k8stest

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// runtime is the fake node's kubelet: kwok moves a pod to Running with an
// IP; the runtime then runs its containers as local processes, writes
// Succeeded or Failed when they have all exited (every pod is treated as
// restartPolicy Never, EG's), and on deletion kills them (SIGTERM, SIGKILL
// after the grace period) and then removes the pod, as a kubelet does, so a
// pod is gone only once its processes are. Init containers are not run.
type runtime struct {
	client   kubernetes.Interface
	images   map[string]Image
	podIPEnv string
	dir      string // a folder per pod run: working directory and output
	log      *log.Logger

	ctx     context.Context // cancelled by stop
	cancel  context.CancelFunc
	factory informers.SharedInformerFactory
	wg      sync.WaitGroup // pod runs and deletions

	mu       sync.Mutex
	runs     map[types.UID]*podRun // pods whose containers were started, until the pod is gone
	deleting map[types.UID]bool    // pods being deleted that have no run
	lastRun  map[string]string     // "namespace/name" → folder of its latest run
}

// podRun is the life of one pod's processes. Its fields are guarded by
// runtime.mu.
type podRun struct {
	namespace string
	grace     *time.Duration // set when the pod is to be killed
	wake      chan struct{}  // told when grace is set or shortened
	finished  bool           // every process has exited
	gone      bool           // the pod object is deleted
}

func startRuntime(ctx context.Context, client kubernetes.Interface, opts Options, dir string) (*runtime, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "runtime.log"))
	if err != nil {
		return nil, err
	}
	r := &runtime{
		client:   client,
		images:   opts.Images,
		podIPEnv: opts.PodIPEnv,
		dir:      dir,
		log:      log.New(logFile, "", log.LstdFlags|log.Lmicroseconds),
		runs:     make(map[types.UID]*podRun),
		deleting: make(map[types.UID]bool),
		lastRun:  make(map[string]string),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.factory = informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + NodeName
		}))
	informer := r.factory.Core().V1().Pods().Informer()
	// The handlers only look at state and start goroutines: they never wait
	// for the API server or a process.
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.sync(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { r.sync(obj.(*corev1.Pod)) },
		DeleteFunc: r.deleted,
	}); err != nil {
		r.stop()
		return nil, fmt.Errorf("runtime: %w", err)
	}
	r.factory.Start(r.ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		r.stop()
		return nil, errors.New("runtime: pod informer did not sync")
	}
	return r, nil
}

// stop kills every process and waits for all of the runtime's goroutines.
func (r *runtime) stop() {
	r.cancel()
	r.factory.Shutdown()
	r.wg.Wait()
}

// sync acts on a pod's new state.
func (r *runtime) sync(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	run := r.runs[pod.UID]
	switch {
	case pod.DeletionTimestamp != nil:
		grace := time.Duration(0)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		if run != nil && !run.finished {
			run.kill(grace)
			return
		}
		if !r.deleting[pod.UID] {
			r.deleting[pod.UID] = true
			r.wg.Go(func() { r.delete(pod) })
		}
	case run == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "":
		run = &podRun{namespace: pod.Namespace, wake: make(chan struct{}, 1)}
		r.runs[pod.UID] = run
		dir := filepath.Join(r.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
		r.lastRun[pod.Namespace+"/"+pod.Name] = dir
		pod := pod.DeepCopy()
		r.wg.Go(func() { r.run(pod, run, dir) })
	}
}

// deleted handles a pod that is gone: its processes, if any, die at once.
func (r *runtime) deleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.deleting, pod.UID)
	run := r.runs[pod.UID]
	if run == nil {
		return
	}
	if run.finished {
		delete(r.runs, pod.UID)
		return
	}
	run.gone = true
	run.kill(0)
}

// kill asks the run to end its processes within grace; a shorter grace
// replaces a longer one, as a kubelet allows. The caller holds runtime.mu.
func (run *podRun) kill(grace time.Duration) {
	if run.grace != nil && *run.grace <= grace {
		return
	}
	run.grace = &grace
	select {
	case run.wake <- struct{}{}:
	default:
	}
}

// live counts the runs in namespace whose processes have not all exited.
func (r *runtime) live(namespace string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, run := range r.runs {
		if run.namespace == namespace && !run.finished {
			n++
		}
	}
	return n
}

func (r *runtime) logs(namespace, pod, container string) (string, error) {
	r.mu.Lock()
	dir, ok := r.lastRun[namespace+"/"+pod]
	r.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("k8stest: pod %s/%s never ran", namespace, pod)
	}
	b, err := os.ReadFile(filepath.Join(dir, container+".log"))
	if err != nil {
		return "", fmt.Errorf("k8stest: %w", err)
	}
	return string(b), nil
}

// exit is how a container ended.
type exit struct {
	code     int32
	reason   string // Completed, Error, StartError
	message  string
	started  time.Time
	finished time.Time
}

// run runs the pod's containers until they have all exited, then reports
// the pod's end to the API server: its terminal status, or its removal if it
// was being deleted.
func (r *runtime) run(pod *corev1.Pod, run *podRun, dir string) {
	key := pod.Namespace + "/" + pod.Name
	exits := make([]exit, len(pod.Spec.Containers))
	procs := make([]*exec.Cmd, len(pod.Spec.Containers))
	done := make(chan int, len(procs)) // indexes of exited containers
	pending := 0
	if err := os.Mkdir(dir, 0o700); err != nil {
		r.log.Printf("%s: %v", key, err)
	}
	for i, ctr := range pod.Spec.Containers {
		now := time.Now()
		cmd, err := r.startContainer(pod, ctr, dir)
		if err != nil {
			r.log.Printf("%s: container %s: %v", key, ctr.Name, err)
			// As a kubelet reports a container its runtime could not start.
			exits[i] = exit{code: 128, reason: "StartError", message: err.Error(), started: now, finished: now}
			continue
		}
		r.log.Printf("%s: container %s: started pid %d: %q", key, ctr.Name, cmd.Process.Pid, cmd.Args)
		exits[i].started = now
		procs[i] = cmd
		pending++
		go func() {
			cmd.Wait() // its error is in cmd.ProcessState
			done <- i
		}()
	}

	signal := func(sig syscall.Signal) {
		for _, p := range procs {
			if p != nil {
				syscall.Kill(-p.Process.Pid, sig)
			}
		}
	}
	var (
		stopping = r.ctx.Done()
		killAt   time.Time
		timer    *time.Timer
		timerC   <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for pending > 0 {
		select {
		case i := <-done:
			pending--
			// A container's processes end with its main process, as they
			// would with its PID namespace.
			syscall.Kill(-procs[i].Process.Pid, syscall.SIGKILL)
			exits[i] = exited(exits[i].started, procs[i].ProcessState)
			procs[i] = nil
			r.log.Printf("%s: container %s: %s (%d)", key, pod.Spec.Containers[i].Name, exits[i].reason, exits[i].code)
		case <-run.wake:
			r.mu.Lock()
			grace := *run.grace
			r.mu.Unlock()
			if killAt.IsZero() {
				signal(syscall.SIGTERM)
			}
			if at := time.Now().Add(grace); killAt.IsZero() || at.Before(killAt) {
				killAt = at
				if timer != nil {
					timer.Stop()
				}
				timer = time.NewTimer(grace)
				timerC = timer.C
			}
		case <-timerC:
			signal(syscall.SIGKILL)
		case <-stopping:
			signal(syscall.SIGKILL)
			stopping = nil
		}
	}

	r.mu.Lock()
	run.finished = true
	killed, gone := run.grace != nil, run.gone
	if gone {
		delete(r.runs, pod.UID)
	}
	r.mu.Unlock()
	switch {
	case r.ctx.Err() != nil || gone:
	case killed:
		r.delete(pod)
	default:
		r.report(pod, exits)
	}
}

// exited describes a process's end as a container status would: a process
// killed by a signal exits 128+signal.
func exited(started time.Time, state *os.ProcessState) exit {
	e := exit{code: int32(state.ExitCode()), reason: "Completed", started: started, finished: time.Now()}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.code = 128 + int32(ws.Signal())
	}
	if e.code != 0 {
		e.reason = "Error"
	}
	return e
}

// report writes the pod's terminal status: Succeeded if every container
// exited 0, else Failed.
func (r *runtime) report(pod *corev1.Pod, exits []exit) {
	phase := corev1.PodSucceeded
	for _, e := range exits {
		if e.code != 0 {
			phase = corev1.PodFailed
		}
	}
	r.retry(pod, "report "+string(phase), func(ctx context.Context) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := r.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.UID != pod.UID {
				return nil
			}
			cur.Status.Phase = phase
			statuses := make([]corev1.ContainerStatus, len(pod.Spec.Containers))
			var unready []string
			for i, ctr := range pod.Spec.Containers {
				e := exits[i]
				statuses[i] = corev1.ContainerStatus{
					Name:  ctr.Name,
					Image: ctr.Image,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
						ExitCode:   e.code,
						Reason:     e.reason,
						Message:    e.message,
						StartedAt:  metav1.NewTime(e.started),
						FinishedAt: metav1.NewTime(e.finished),
					}},
				}
				unready = append(unready, ctr.Name)
			}
			cur.Status.ContainerStatuses = statuses
			reason, message := "PodCompleted", ""
			if phase == corev1.PodFailed {
				reason, message = "ContainersNotReady", "containers with unready status: ["+strings.Join(unready, " ")+"]"
			}
			for i, c := range cur.Status.Conditions {
				if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
					cur.Status.Conditions[i] = corev1.PodCondition{Type: c.Type, Status: corev1.ConditionFalse,
						Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
				}
			}
			_, err = r.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	})
}

// delete removes the pod object once nothing of it runs.
func (r *runtime) delete(pod *corev1.Pod) {
	r.retry(pod, "delete", func(ctx context.Context) error {
		err := r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsConflict(err) {
			return nil // the UID precondition: the name is another pod's now
		}
		return err
	})
}

// retry calls f until it succeeds, the pod is gone, or the runtime stops: a
// test may pause the API server for a while.
func (r *runtime) retry(pod *corev1.Pod, what string, f func(context.Context) error) {
	wait.PollUntilContextCancel(r.ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		err := f(ctx)
		if err == nil || apierrors.IsNotFound(err) {
			return true, nil
		}
		if ctx.Err() == nil {
			r.log.Printf("%s/%s: %s: %v", pod.Namespace, pod.Name, what, err)
		}
		return false, nil
	})
}

// startContainer starts a container's process: the argv, environment and
// working directory a container runtime would give it, in a process group
// of its own that dies with the test binary.
func (r *runtime) startContainer(pod *corev1.Pod, ctr corev1.Container, dir string) (*exec.Cmd, error) {
	// A pod IP is where tests and the product dial: only loopback is safe.
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("pod IP %q is not a loopback address; refusing to run", pod.Status.PodIP)
	}
	img, known := r.images[ctr.Image]
	vars := make(map[string]string) // the container's variables, for $(VAR)
	env := append([]string(nil), img.Env...)
	if len(ctr.EnvFrom) > 0 {
		return nil, errors.New("envFrom is not supported")
	}
	for _, e := range ctr.Env {
		v := expand(e.Value, vars)
		if e.ValueFrom != nil {
			var err error
			if e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil {
				v, err = r.keyRef(pod.Namespace, e.ValueFrom)
			} else {
				v, err = fieldValue(pod, e.ValueFrom)
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		vars[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	if r.podIPEnv != "" {
		vars[r.podIPEnv] = pod.Status.PodIP
		env = append(env, r.podIPEnv+"="+pod.Status.PodIP)
	}
	// What the container runtime adds: a hostname, and a PATH when the
	// image sets none (containerd's default).
	env = append([]string{"HOSTNAME=" + pod.Name}, env...)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}

	var argv []string
	switch {
	case len(ctr.Command) > 0:
		argv = append(slicesExpand(ctr.Command, vars), slicesExpand(ctr.Args, vars)...)
	case !known:
		return nil, fmt.Errorf("no command, and no entrypoint known for image %q (k8stest.Options.Images)", ctr.Image)
	case len(ctr.Args) > 0:
		argv = append(append([]string(nil), img.Entrypoint...), slicesExpand(ctr.Args, vars)...)
	default:
		argv = append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("image %q has neither entrypoint nor cmd", ctr.Image)
	}

	out, err := os.OpenFile(filepath.Join(dir, ctr.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the process has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	if ctr.WorkingDir != "" {
		cmd.Dir = ctr.WorkingDir
	} else if img.WorkingDir != "" {
		cmd.Dir = img.WorkingDir
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// keyRef reads an env var's valueFrom.secretKeyRef or configMapKeyRef
// from the API, as a kubelet does when it starts the container.
func (r *runtime) keyRef(namespace string, from *corev1.EnvVarSource) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ref := from.SecretKeyRef; ref != nil {
		s, err := r.client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), nil
			}
			err = fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", err
	}
	ref := from.ConfigMapKeyRef
	cm, err := r.client.CoreV1().ConfigMaps(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err == nil {
		if v, ok := cm.Data[ref.Key]; ok {
			return v, nil
		}
		err = fmt.Errorf("configmap %s has no key %q", ref.Name, ref.Key)
	}
	if ref.Optional != nil && *ref.Optional {
		return "", nil
	}
	return "", err
}

// fieldValue resolves an env var's valueFrom: the downward API's fields a
// kernel pod might use; anything else fails the container as a kubelet fails
// one it cannot configure.
func fieldValue(pod *corev1.Pod, from *corev1.EnvVarSource) (string, error) {
	if from.FieldRef == nil {
		return "", errors.New("only valueFrom.fieldRef, secretKeyRef and configMapKeyRef are supported")
	}
	switch from.FieldRef.FieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", from.FieldRef.FieldPath)
}

func slicesExpand(ss []string, vars map[string]string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = expand(s, vars)
	}
	return out
}

// expand replaces $(NAME) with vars[NAME] as a kubelet does in command, args
// and env values: $$ is a literal $, and a reference to an unknown variable
// stays as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			ref := s[i : i+3+end]
			if v, ok := vars[ref[2:len(ref)-1]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

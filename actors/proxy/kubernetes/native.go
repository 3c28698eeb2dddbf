package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TemplateFile is where a kernelspec keeps its pod template, as EG's
// launch_kubernetes.py finds it beside itself.
const TemplateFile = "scripts/kernel-pod.yaml.j2"

// render makes the kernel's objects from its kernelspec's template as EG's
// launch_kubernetes.py does, with the variables it would have from the
// kernelspec's argv, and puts EG's and kernelgate's labels on the pod.
func (l *launch) render() (*podtemplate.PodObjects, error) {
	tpl, err := l.p.templates.get(filepath.Join(l.req.Spec.Dir, filepath.FromSlash(TemplateFile)))
	if err != nil {
		return nil, fmt.Errorf("kernelspec %s: %w", l.req.Spec.Name, err)
	}
	sparkMode, className := launcherFlags(l.req.Spec.Argv)
	lv := podtemplate.Launch{KernelID: l.req.KernelID, PortRange: l.args.PortRange,
		ResponseAddress: l.args.ResponseAddress, PublicKey: l.args.PublicKey, SparkContextInitMode: sparkMode,
		KernelClassName: className, KernelName: filepath.Base(l.req.Spec.Dir)}
	vars, err := podtemplate.PodVars(l.env, lv)
	if err != nil {
		return nil, err
	}
	objs, err := tpl.Pod(vars)
	if err != nil {
		return nil, err
	}
	pod := objs.Pod
	podtemplate.ExtendEnv(pod, podEnv(lv.PodEnv(l.env)))
	if pod.Namespace == "" {
		pod.Namespace = l.namespace
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	// The informer and the sweep find kernel pods by these, whatever the
	// template says; EG's app label is kept if the template has another.
	labels := l.p.labels(l.req.KernelID)
	if _, ok := pod.Labels[LabelApp]; ok {
		delete(labels, LabelApp)
	}
	maps.Copy(pod.Labels, labels)
	return objs, nil
}

// podEnv is the environment a pod's container gets: the kernel's, without
// what describes the gateway's machine (its PATH would hide the image's).
func podEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if !proxy.IsHostVariable(k) {
			out[k] = v
		}
	}
	return out
}

// launcherFlags reads, from a kernelspec's argv, what EG's
// launch_kubernetes.py takes from its command line besides the
// placeholders: --spark-context-initialization-mode and
// --kernel-class-name (new and deprecated forms, "--flag value" or
// "--flag=value").
func launcherFlags(argv []string) (sparkMode, className string) {
	for i := 0; i < len(argv); i++ {
		name, value, hasValue := strings.Cut(argv[i], "=")
		if !hasValue && i+1 < len(argv) {
			value = argv[i+1]
		}
		switch strings.TrimPrefix(name, "--RemoteProcessProxy.") {
		case "--spark-context-initialization-mode", "spark-context-initialization-mode":
			sparkMode = value
		case "--kernel-class-name":
			className = value
		}
	}
	return sparkMode, className
}

// create makes the kernel's objects in launch_kubernetes.py's way: the
// pod, then a Service and a ConfigMap owned by it (deleted with it);
// Secrets and volumes first, for the pod to use (they stay, as in EG,
// until the namespace goes).
func (l *launch) create(ctx context.Context, objs *podtemplate.PodObjects) error {
	ns, core := l.namespace, l.p.client.CoreV1()
	if s := objs.Secret; s != nil {
		if _, err := core.Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating the kernel's Secret: %w", err)
		}
	}
	if c := objs.PersistentVolumeClaim; c != nil {
		if _, err := core.PersistentVolumeClaims(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the kernel's PersistentVolumeClaim: %w", err)
		}
	}
	if v := objs.PersistentVolume; v != nil {
		if _, err := core.PersistentVolumes().Create(ctx, v, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the kernel's PersistentVolume: %w", err)
		}
	}
	l.p.mu.Lock()
	l.p.listen(l.watch, objs.Pod.Namespace, objs.Pod.Name)
	l.p.mu.Unlock()
	pod, err := l.createPod(ctx, objs.Pod)
	if err != nil {
		return err
	}
	l.watch.adopt(pod)
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	if s := objs.Service; s != nil {
		s.OwnerReferences = owner
		if _, err := core.Services(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating the kernel's Service: %w", err)
		}
	}
	if c := objs.ConfigMap; c != nil {
		c.OwnerReferences = owner
		if _, err := core.ConfigMaps(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating the kernel's ConfigMap: %w", err)
		}
	}
	return nil
}

// serviceAccountRetry is the first wait before a pod is tried again in a
// namespace just made, whose service account the controller manager has
// yet to make; each wait doubles, up to a second.
const serviceAccountRetry = 50 * time.Millisecond

// createPod creates the pod. In a namespace this launch made, the
// namespace's service account may not exist yet (the controller manager
// makes it a moment later): the pod is tried again until the launch times
// out. Any other refusal (a quota, an admission webhook, a policy) fails
// the launch with the API server's message.
func (l *launch) createPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	for wait := serviceAccountRetry; ; wait = min(2*wait, time.Second) {
		created, err := l.p.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if !l.madeNamespace || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "error looking up service account") {
			return nil, fmt.Errorf("%w: the API server refused pod %s/%s: %w", ErrPodFailed, pod.Namespace, pod.Name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
		case <-t.C:
		}
	}
}

// templates keeps parsed pod templates, parsed again when their file
// changes.
type templates struct {
	mu     sync.Mutex
	byPath map[string]parsedTemplate
}

type parsedTemplate struct {
	mod  time.Time
	size int64
	t    *podtemplate.Template
}

func (c *templates) get(path string) (*podtemplate.Template, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("no pod template: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt, ok := c.byPath[path]; ok && pt.mod.Equal(fi.ModTime()) && pt.size == fi.Size() {
		return pt.t, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	t, err := podtemplate.Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("pod template %s: %w", path, err)
	}
	if c.byPath == nil {
		c.byPath = make(map[string]parsedTemplate)
	}
	c.byPath[path] = parsedTemplate{mod: fi.ModTime(), size: fi.Size(), t: t}
	return t, nil
}

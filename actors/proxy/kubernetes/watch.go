package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// podWatch is one launch's view of its pod, fed by the shared informers:
// the pod's latest state and its latest Warning event. Informer handlers
// only store and signal; the launch and the kernel read.
type podWatch struct {
	kernelID string
	changed  chan struct{} // signalled on every change; holds one
	// keys are the namespace/name its pods' events come under. Guarded by
	// Provisioner.mu.
	keys map[string]bool

	mu      sync.Mutex
	uid     types.UID   // the launch's pod, once known
	pod     *corev1.Pod // latest seen (of uid, once known)
	gone    bool        // deleted
	warning string      // latest Warning event of the pod: "Reason: message"
	ended   chan struct{}
	endErr  error
	onEnd   func(error) // the launched kernel's End
}

func newPodWatch(kernelID string) *podWatch {
	return &podWatch{kernelID: kernelID, changed: make(chan struct{}, 1), ended: make(chan struct{}), keys: map[string]bool{}}
}

func (w *podWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// observe takes a pod event for the watch's kernel. Before the launch
// knows its pod's UID every pod of the kernel counts (the launch tells
// them apart); after, only that pod, whose end or deletion ends the watch.
func (w *podWatch) observe(pod *corev1.Pod, deleted bool) {
	w.mu.Lock()
	if w.uid != "" && pod.UID != w.uid {
		w.mu.Unlock()
		return
	}
	w.pod, w.gone = pod, deleted
	var end error
	if w.uid != "" {
		end = podEnd(pod, deleted)
	}
	w.mu.Unlock()
	if end != nil {
		w.end(end)
	}
	w.signal()
}

// event takes a Warning event about the watch's pod.
func (w *podWatch) event(e *corev1.Event) {
	w.mu.Lock()
	if w.uid != "" && e.InvolvedObject.UID != "" && e.InvolvedObject.UID != w.uid {
		w.mu.Unlock()
		return
	}
	w.warning = e.Reason + ": " + e.Message
	w.mu.Unlock()
	w.signal()
}

// adopt fixes the launch's pod; a pod ended already ends the watch.
func (w *podWatch) adopt(pod *corev1.Pod) {
	w.mu.Lock()
	w.uid = pod.UID
	if w.pod == nil || w.pod.UID != pod.UID {
		w.pod, w.gone = pod, false
	}
	end := podEnd(w.pod, w.gone)
	w.mu.Unlock()
	if end != nil {
		w.end(end)
	}
}

// adopted reports whether the launch knows its pod.
func (w *podWatch) adopted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.uid != ""
}

// state returns the launch's pod as last seen (nil if not seen yet: a pod
// of another UID is not it), its latest warning and whether it is gone.
func (w *podWatch) state() (pod *corev1.Pod, warning string, gone bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pod != nil && (w.uid == "" || w.pod.UID == w.uid) {
		pod = w.pod
	}
	return pod, w.warning, w.gone && pod != nil
}

func (w *podWatch) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.ended:
		return
	default:
	}
	w.endErr = err
	close(w.ended)
	if w.onEnd != nil {
		w.onEnd(err)
	}
}

// endWith has end call f (now, if the watch has ended already).
func (w *podWatch) endWith(f func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.ended:
		f(w.endErr)
	default:
		w.onEnd = f
	}
}

// podEnd says how a kernel pod ended, or nil while it has not.
func podEnd(pod *corev1.Pod, deleted bool) error {
	key := pod.Namespace + "/" + pod.Name
	switch {
	case deleted:
		return fmt.Errorf("pod %s was deleted", key)
	case pod.Status.Phase == corev1.PodSucceeded:
		return fmt.Errorf("pod %s completed: its kernel exited", key)
	case pod.Status.Phase == corev1.PodFailed:
		return fmt.Errorf("pod %s failed: %s", key, failure(pod))
	}
	return nil
}

// errClosed reports a provisioner used after Close.
var errClosed = errors.New("kubernetes process proxy is closed")

// watching starts the shared informers on first use and waits until they
// have listed what there is.
func (p *Provisioner) watching(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errClosed
	}
	if p.informer == nil {
		p.informer = p.startInformers()
	}
	inf := p.informer
	p.mu.Unlock()
	pods := inf.pods.Core().V1().Pods().Informer()
	events := inf.events.Core().V1().Events().Informer()
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, events.HasSynced) {
		return fmt.Errorf("the API server did not list kernel pods in time: %w", context.Cause(ctx))
	}
	return nil
}

// startInformers watches kernel pods (label component=kernel, in every
// namespace: EG's launcher labels them so) and Warning events of pods.
// Their caches keep only what is read here: a kernel pod's spec holds the
// kernel's whole environment. The caller holds p.mu.
func (p *Provisioner) startInformers() *informerSet {
	ctx, cancel := context.WithCancel(context.Background())
	s := &informerSet{cancel: cancel,
		pods: informers.NewSharedInformerFactoryWithOptions(p.client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelComponent + "=kernel" }),
			informers.WithTransform(slimPod)),
		events: informers.NewSharedInformerFactoryWithOptions(p.client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "involvedObject.kind=Pod,type=Warning" }),
			informers.WithTransform(slimEvent)),
	}
	// Handlers run on the informers' goroutines: they look up and store,
	// nothing more.
	s.pods.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.podEvent(obj, false) },
		UpdateFunc: func(_, obj any) { p.podEvent(obj, false) },
		DeleteFunc: func(obj any) { p.podEvent(obj, true) },
	})
	s.events.Core().V1().Events().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.warningEvent,
		UpdateFunc: func(_, obj any) { p.warningEvent(obj) },
	})
	s.pods.StartWithContext(ctx)
	s.events.StartWithContext(ctx)
	return s
}

func (p *Provisioner) podEvent(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p.mu.Lock()
	var w *podWatch
	if st := p.kernels[pod.Labels[LabelKernelID]]; st != nil {
		w = st.watch
	}
	if w != nil {
		p.listen(w, pod.Namespace, pod.Name)
	}
	p.mu.Unlock()
	if w != nil {
		w.observe(pod, deleted)
	}
}

// listen routes the events of pod namespace/name to w. The caller holds
// p.mu.
func (p *Provisioner) listen(w *podWatch, namespace, name string) {
	key := namespace + "/" + name
	p.pods[key] = w
	w.keys[key] = true
}

func (p *Provisioner) warningEvent(obj any) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	p.mu.Lock()
	w := p.pods[e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name]
	p.mu.Unlock()
	if w != nil {
		w.event(e)
	}
}

// slimPod keeps of a pod what the provisioner reads.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, Labels: pod.Labels,
			ResourceVersion: pod.ResourceVersion, DeletionTimestamp: pod.DeletionTimestamp},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, Message: pod.Status.Message,
			Reason: pod.Status.Reason, Conditions: pod.Status.Conditions, ContainerStatuses: pod.Status.ContainerStatuses,
			InitContainerStatuses: pod.Status.InitContainerStatuses},
	}, nil
}

// slimEvent keeps of an event what the provisioner reads.
func slimEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace, ResourceVersion: e.ResourceVersion},
		InvolvedObject: e.InvolvedObject, Reason: e.Reason, Message: e.Message, Type: e.Type,
	}, nil
}

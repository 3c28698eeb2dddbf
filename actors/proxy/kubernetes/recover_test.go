package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A gateway that stops leaving its kernels running (keep-kernels-on-stop)
// is followed by one of the same instance id: the kernel whose record
// survives is taken back and runs code; the kernel whose record is lost
// is an orphan (as after a crash: EG#1086), and its pod and namespace are
// deleted. Another gateway's kernel is left alone.
func TestRecoveryAndOrphans(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	records := fileStore(t)
	instance := testInstance()
	keeping := func(a *actors.Config) { a.Store, a.KeepKernelsOnStop = records, true }
	first := newRig(t, c, rigOptions{instance: instance, gateway: keeping})
	kept := first.started(specSynth, nil)
	lost := first.started(specSynth, nil)
	keptPod, lostPod := first.pod(kept, running), first.pod(lost, running)

	other := newRig(t, c, rigOptions{})
	neighbour := other.started(specSynth, nil)

	first.stop()
	testkit.NoError(t, os.Remove(filepath.Join(records.Dir, lost+".json")))

	second := newRig(t, c, rigOptions{instance: instance, gateway: keeping})
	status, body := second.do("GET", "/api/kernels/"+kept, "")
	testkit.Equal(t, status, http.StatusOK)
	testkit.Equal(t, run(t, second.connect(kept), "echo still here"), "ok")
	testkit.Equal(t, second.pod(kept, running).UID, keptPod.UID)
	second.noPods(lost)
	second.namespaceGoing(lostPod.Namespace)
	status, _ = second.do("GET", "/api/kernels/"+lost, "")
	testkit.Equal(t, status, http.StatusNotFound)
	other.pod(neighbour, running)

	// The namespace made by the first gateway goes with the kernel.
	second.shutdown(kept)
	second.noPods(kept)
	second.namespaceGoing(keptPod.Namespace)
	other.shutdown(neighbour)
	other.noPods(neighbour)
	t.Logf("recovered kernel %s (%s)", kept, body)
}

// A Sweep deletes only what carries this gateway's instance id and no
// kernel claims.
func TestSweepLeavesClaimedKernels(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	r := newRig(t, c, rigOptions{})
	live := r.started(specSynth, nil)
	orphan := func(name, kernelID string) {
		labels := r.p.labels(kernelID)
		_, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "c", Image: "example.test/orphan:1"}}},
		}, metav1.CreateOptions{})
		testkit.NoError(t, err)
	}
	orphan("claimed", "00000000-0000-4000-8000-000000000001")
	orphan("unclaimed", "00000000-0000-4000-8000-000000000002")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testkit.NoError(t, r.p.Sweep(ctx, []string{"00000000-0000-4000-8000-000000000001"}))
	testkit.Eventually(t, 30*time.Second, func() error {
		pods, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		if len(names) != 1 || names[0] != "claimed" {
			return fmt.Errorf("pods left: %v", names)
		}
		return nil
	})
	r.pod(live, running)
	r.shutdown(live)
	r.noPods(live)
}

package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An interrupt reaches the kernel through its launcher's comm port and
// ends a cell that sleeps.
func TestInterruptEndsASleepingCell(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := r.started(specPython, nil)
	conn := r.connect(id)
	done := make(chan string, 1)
	go func() { done <- run(t, conn, "import time; time.sleep(120)") }()
	testkit.Eventually(t, 30*time.Second, func() error {
		_, body := r.do("GET", "/api/kernels/"+id, "")
		var m struct {
			State string `json:"execution_state"`
		}
		json.Unmarshal(body, &m)
		if m.State != "busy" {
			return fmt.Errorf("kernel is %s", m.State)
		}
		return nil
	})
	asked := time.Now()
	status, body := r.do("POST", "/api/kernels/"+id+"/interrupt", "")
	testkit.Equal(t, status, http.StatusNoContent)
	select {
	case s := <-done:
		testkit.Equal(t, s, "error") // KeyboardInterrupt
		t.Logf("the cell ended %v after the interrupt", time.Since(asked).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatalf("the cell still sleeps 20 s after the interrupt (%s)", body)
	}
	r.shutdown(id)
	r.noPods(id)
}

// squatting takes, before each relaunch, the IP its kernel's last pod
// freed: the test cluster would give it to the next pod, and a restart must
// be seen to use the new pod's IP (EG reuses the old one: EG#1012).
type squatting struct {
	*Provisioner
	launches atomic.Int32
	squat    func()
}

func (s *squatting) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	if s.launches.Add(1) > 1 {
		s.squat()
	}
	return s.Provisioner.Launch(ctx, req)
}

// A restart makes a new pod, at a new IP, and the kernel runs code there.
func TestRestartMakesANewPod(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	squatters := c.Namespace(t)
	var oldIP string
	r := newRig(t, c, rigOptions{wrap: func(p *Provisioner) proxy.Provisioner {
		return &squatting{Provisioner: p, squat: func() { squat(t, c, squatters, oldIP) }}
	}})
	id := r.started(specPython, nil)
	old := r.pod(id, running)
	oldIP = old.Status.PodIP
	testkit.Equal(t, run(t, r.connect(id), "x = 1"), "ok")

	status, body := r.do("POST", "/api/kernels/"+id+"/restart", "")
	testkit.Equal(t, status, http.StatusOK)
	pod := r.pod(id, func(p *corev1.Pod) error {
		if p.UID == old.UID {
			return fmt.Errorf("still the old pod")
		}
		return running(p)
	})
	testkit.Equal(t, pod.Name, old.Name)
	testkit.True(t, pod.Status.PodIP != oldIP, "the new pod has the old IP %s (%s)", oldIP, body)
	t.Logf("pod IP %s before the restart, %s after", oldIP, pod.Status.PodIP)
	conn := r.connect(id)
	testkit.Equal(t, run(t, conn, "x"), "error") // a new kernel: x is gone
	testkit.Equal(t, run(t, conn, "x = 2"), "ok")
	r.shutdown(id)
	r.noPods(id)
}

// squat makes pods in namespace until one of them holds ip.
func squat(t *testing.T, c *k8stest.Cluster, namespace, ip string) {
	for batch := 0; batch < 20; batch++ {
		var names []string
		for i := range 10 {
			name := fmt.Sprintf("squatter-%d-%d", batch, i)
			names = append(names, name)
			_, err := c.Client.CoreV1().Pods(namespace).Create(context.Background(), &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				// An image the runtime does not know: the pod gets an IP and
				// fails, holding the IP until it is deleted.
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "example.test/squatter:1"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("squatter: %v", err)
				return
			}
		}
		for _, name := range names {
			var got string
			testkit.Eventually(t, 30*time.Second, func() error {
				p, err := c.Client.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
				if err == nil && p.Status.PodIP == "" {
					err = fmt.Errorf("squatter %s has no IP yet", name)
				}
				if err == nil {
					got = p.Status.PodIP
				}
				return err
			})
			if got == ip {
				return
			}
		}
	}
	t.Errorf("no squatter got %s", ip)
}

// A pod deleted behind the gateway's back is a dead kernel: it restarts in
// a new pod, as a local kernel would restart.
func TestDeletedPodRestartsItsKernel(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := r.started(specSynth, nil)
	old := r.pod(id, running)
	zero := int64(0)
	testkit.NoError(t, c.Client.CoreV1().Pods(old.Namespace).Delete(context.Background(), old.Name,
		metav1.DeleteOptions{GracePeriodSeconds: &zero}))
	r.pod(id, func(p *corev1.Pod) error {
		if p.UID == old.UID {
			return fmt.Errorf("still the old pod")
		}
		return running(p)
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, body := r.do("GET", "/api/kernels/"+id, "")
		var m struct {
			State string `json:"execution_state"`
		}
		json.Unmarshal(body, &m)
		if m.State != "idle" {
			return fmt.Errorf("kernel is %s", m.State)
		}
		return nil
	})
	testkit.Equal(t, run(t, r.connect(id), "echo back"), "ok")
	testkit.Equal(t, r.gw.Metrics().Restarts.Load(), 1)
	r.shutdown(id)
	r.noPods(id)
}

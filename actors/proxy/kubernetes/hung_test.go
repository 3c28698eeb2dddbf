package kubernetes

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An API server that hangs stalls only what needs it: running kernels
// (in pods and local) keep executing, their websockets and REST models
// answer, interrupts reach them, local kernels start. A Kubernetes start
// fails at its timeout, and once the server is back, starts work again.
func TestHungAPIServerStallsNothingElse(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := r.started(specSynth, nil)
	conn := r.connect(id)

	testkit.NoError(t, c.PauseAPIServer())
	paused := true
	resume := func() {
		if paused {
			paused = false
			testkit.NoError(t, c.ResumeAPIServer())
		}
	}
	t.Cleanup(resume)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	testkit.ErrorIs(t, err, context.DeadlineExceeded) // it does hang

	stuck := make(chan int, 1)
	go func() {
		status, _ := r.start(specSynth, map[string]string{"KERNEL_LAUNCH_TIMEOUT": "3"})
		stuck <- status
	}()
	began := time.Now()
	testkit.Equal(t, run(t, conn, "echo while the API server hangs"), "ok")
	status, _ := r.do("GET", "/api/kernels/"+id, "")
	testkit.Equal(t, status, http.StatusOK)
	status, _ = r.do("POST", "/api/kernels/"+id+"/interrupt", "")
	testkit.Equal(t, status, http.StatusNoContent)
	local := r.started(specLocal, nil)
	testkit.Equal(t, run(t, r.connect(local), "echo local"), "ok")
	took := time.Since(began)
	testkit.True(t, took < 5*time.Second, "the kernels' work took %v while the API server hung", took)
	t.Logf("a pod kernel ran code, answered REST and an interrupt, and a local kernel started and ran code, in %v", took.Round(time.Millisecond))

	select {
	case status := <-stuck:
		testkit.Equal(t, status, http.StatusInternalServerError)
	case <-time.After(30 * time.Second):
		t.Fatal("the start during the hang did not end at its timeout")
	}
	t.Logf("the start during the hang failed after %v", time.Since(began).Round(time.Millisecond))
	resume()
	again := r.started(specSynth, nil)
	testkit.Equal(t, run(t, r.connect(again), "echo after"), "ok")
	for _, k := range []string{id, local, again} {
		r.shutdown(k)
	}
	r.noPods(id)
	r.noPods(again)
}

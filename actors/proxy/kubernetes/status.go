package kubernetes

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// fatalWaiting are the reasons a container waits that it will not get past
// on its own: the kubelet retries, with growing delays, what has already
// failed. (CreateContainerConfigError is not one: a ConfigMap or Secret
// the template creates after the pod clears it.)
var fatalWaiting = map[string]bool{
	"ErrImagePull":         true,
	"ImagePullBackOff":     true,
	"ErrImageNeverPull":    true,
	"InvalidImageName":     true,
	"CrashLoopBackOff":     true,
	"CreateContainerError": true,
	"RunContainerError":    true,
}

// cannotRun says why a kernel pod whose kernel has not reported yet will
// not run, or "" while it may still. An unschedulable pod counts unless
// waitUnschedulable (an autoscaler may add a node for it).
func cannotRun(pod *corev1.Pod, waitUnschedulable bool) string {
	if pod.DeletionTimestamp != nil {
		return "the pod is being deleted"
	}
	switch pod.Status.Phase {
	case corev1.PodFailed:
		return "Failed: " + failure(pod)
	case corev1.PodSucceeded:
		return "its containers exited before the kernel reported"
	}
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range statuses {
			if w := cs.State.Waiting; w != nil && fatalWaiting[w.Reason] {
				return joinText(w.Reason, w.Message)
			}
		}
	}
	if !waitUnschedulable {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return joinText(c.Reason, c.Message)
			}
		}
	}
	return ""
}

// failure describes a Failed pod: its own reason, else its containers'.
func failure(pod *corev1.Pod) string {
	if pod.Status.Reason != "" || pod.Status.Message != "" {
		return joinText(pod.Status.Reason, pod.Status.Message)
	}
	var parts []string
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range statuses {
			if t := cs.State.Terminated; t != nil && (t.ExitCode != 0 || t.Reason != "Completed") {
				parts = append(parts, fmt.Sprintf("container %s: %s (exit code %d)", cs.Name, joinText(t.Reason, t.Message), t.ExitCode))
			}
		}
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, "; ")
}

// describe tells where a pod is, for a launch that timed out waiting.
func describe(pod *corev1.Pod) string {
	if pod == nil {
		return "no pod yet"
	}
	parts := []string{"phase " + string(pod.Status.Phase)}
	for _, c := range pod.Status.Conditions {
		if c.Status == corev1.ConditionFalse && c.Reason != "" {
			parts = append(parts, fmt.Sprintf("%s: %s", c.Type, joinText(c.Reason, c.Message)))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			parts = append(parts, fmt.Sprintf("container %s waiting: %s", cs.Name, joinText(w.Reason, w.Message)))
		}
	}
	return strings.Join(parts, ", ")
}

func joinText(reason, message string) string {
	switch {
	case message == "":
		return reason
	case reason == "":
		return message
	}
	return reason + ": " + message
}

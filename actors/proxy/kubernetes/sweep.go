package kubernetes

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Sweep deletes the kernel pods and namespaces labelled as this gateway's
// (InstanceID) that no kernel claims: neither taken back from a record
// (recovered) nor launched by this process since it started. They are
// what a gateway that crashed left behind (EG#1086): nobody could reach
// them again, and they hold their resources until deleted.
func (p *Provisioner) Sweep(ctx context.Context, recovered []string) error {
	claimed := make(map[string]bool, len(recovered))
	for _, id := range recovered {
		claimed[id] = true
	}
	orphan := func(id string) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return !claimed[id] && p.kernels[id] == nil
	}
	selector := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + managedBy + "," + LabelInstance + "=" + p.cfg.InstanceID}
	var errs []error
	pods, err := p.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, selector)
	if err != nil {
		return fmt.Errorf("listing this gateway's kernel pods: %w", err)
	}
	for _, pod := range pods.Items {
		id := pod.Labels[LabelKernelID]
		if !orphan(id) {
			continue
		}
		p.cfg.Logger.Info().Str("kernel_id", id).Str("pod", pod.Namespace+"/"+pod.Name).Msg("deleting a kernel pod no kernel claims")
		errs = append(errs, p.deletePod(ctx, pod.Namespace, pod.Name, pod.UID))
	}
	namespaces, err := p.client.CoreV1().Namespaces().List(ctx, selector)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing this gateway's kernel namespaces: %w", err))...)
	}
	for _, ns := range namespaces.Items {
		id := ns.Labels[LabelKernelID]
		if ns.DeletionTimestamp != nil || !orphan(id) {
			continue
		}
		p.cfg.Logger.Info().Str("kernel_id", id).Str("namespace", ns.Name).Msg("deleting a kernel namespace no kernel claims")
		errs = append(errs, p.deleteNamespace(ctx, ns.Name))
	}
	return errors.Join(errs...)
}

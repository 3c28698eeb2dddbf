package kubernetes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// labels are what kernelgate puts on the objects it makes for a kernel:
// EG's labels and its own.
func (p *Provisioner) labels(kernelID string) map[string]string {
	return map[string]string{
		LabelApp: "enterprise-gateway", LabelComponent: "kernel", LabelKernelID: kernelID,
		LabelManagedBy: managedBy, LabelInstance: p.cfg.InstanceID,
	}
}

// createNamespace makes the kernel's own namespace, as EG does: named
// after its pod, labelled, with a RoleBinding (named after the cluster
// role) of EG_KERNEL_CLUSTER_ROLE to the kernel's service account. If the
// binding fails the namespace goes too.
func (p *Provisioner) createNamespace(ctx context.Context, name, kernelID, serviceAccount string) error {
	labels := p.labels(kernelID)
	_, err := p.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	_, err = p.client.RbacV1().RoleBindings(name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: p.cfg.ClusterRole, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: p.cfg.ClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: name}},
	}, metav1.CreateOptions{})
	if err != nil {
		if derr := p.deleteNamespace(context.WithoutCancel(ctx), name); derr != nil {
			p.cfg.Logger.Warn().Err(derr).Str("kernel_id", kernelID).Msg("deleting the kernel's namespace after its RoleBinding failed")
		}
		return fmt.Errorf("creating the RoleBinding of %s in namespace %s: %w", p.cfg.ClusterRole, name, err)
	}
	return nil
}

// deleteNamespace deletes a namespace and, with it, whatever is left in
// it; one that is gone already is fine.
func (p *Provisioner) deleteNamespace(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	err := p.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	return nil
}

// Retire forgets a kernel that has ended for good and deletes the
// namespace made for it, if any (as EG, not at a restart: the next pod
// goes into it).
func (p *Provisioner) Retire(ctx context.Context, kernelID string) error {
	p.mu.Lock()
	st := p.kernels[kernelID]
	delete(p.kernels, kernelID)
	p.mu.Unlock()
	if st == nil || !st.ownNamespace {
		return nil
	}
	p.cfg.Logger.Info().Str("kernel_id", kernelID).Str("namespace", st.namespace).Msg("deleting the kernel's namespace")
	return p.deleteNamespace(ctx, st.namespace)
}

// removeTemplateFile removes the pod template a Spark kernelspec's
// launcher wrote for the kernel (EG_POD_TEMPLATE_DIR/kpt_<id>), as EG does.
func (p *Provisioner) removeTemplateFile(kernelID string) {
	if p.cfg.PodTemplateDir != "" {
		os.Remove(filepath.Join(p.cfg.PodTemplateDir, "kpt_"+kernelID))
	}
}

package binding

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/bindingindex"
	"github.com/podidentity/podidentity-operator/internal/managedfields"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// desiredAnnotations are the annotations the binding sets on its ServiceAccount.
func desiredAnnotations(b *v1alpha1.PodIdentityBinding, roleARN string) map[string]string {
	if roleARN == "" {
		// EKS Pod Identity: none (the SDK would prefer a web identity token).
		return map[string]string{}
	}
	a := map[string]string{vocab.AnnotationRoleARN: roleARN}
	if t := b.Spec.ServiceAccountToken; t != nil {
		if t.Audience != "" {
			a[vocab.AnnotationAudience] = t.Audience
		}
		if t.STSRegionalEndpoints != nil {
			a[vocab.AnnotationSTSRegionalEndpoints] = strconv.FormatBool(*t.STSRegionalEndpoints)
		}
		if t.ExpirationSeconds != nil {
			a[vocab.AnnotationTokenExpiration] = strconv.FormatInt(*t.ExpirationSeconds, 10)
		}
	}
	return a
}

// createdBy reports whether the binding created the ServiceAccount: it is
// labelled as managed and controlled by the binding (same UID).
func createdBy(sa *metav1.PartialObjectMetadata, b *v1alpha1.PodIdentityBinding) bool {
	if sa.Labels[vocab.LabelManagedBy] != vocab.ManagedByValue {
		return false
	}
	ref := metav1.GetControllerOf(sa)
	return ref != nil && ref.UID == b.UID
}

// syncServiceAccount sets the binding's annotations on its ServiceAccount by
// server-side apply with the binding's own field manager, creating the
// ServiceAccount (labelled, owned by the binding) when it does not exist.
// Nothing else on an existing ServiceAccount is touched. A change is
// announced with a ServiceAccountUpdated event when announce is set.
func (r *Reconciler) syncServiceAccount(ctx context.Context, b *v1alpha1.PodIdentityBinding, name, roleARN string, announce bool) error {
	key := types.NamespacedName{Namespace: b.Namespace, Name: name}
	sa := objmeta.ServiceAccountMeta()
	err := r.Get(ctx, key, sa)
	if apierrors.IsNotFound(err) {
		// The cache may lag: confirm with a live read before creating, so a
		// ServiceAccount someone else just created is never taken over.
		err = r.APIReader.Get(ctx, key, sa)
	}
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	owned := !exists || createdBy(sa, b)
	want := desiredAnnotations(b, roleARN)

	if roleARN == "" && exists {
		if err := r.dropForeignRoleARN(ctx, b, sa); err != nil {
			return err
		}
	}
	if exists && inSync(sa, b, want, owned) {
		return nil
	}
	ac := corev1ac.ServiceAccount(key.Name, key.Namespace).WithAnnotations(want)
	if owned {
		ac = ac.WithLabels(map[string]string{vocab.LabelManagedBy: vocab.ManagedByValue}).
			WithOwnerReferences(metav1ac.OwnerReference().
				WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind("PodIdentityBinding").
				WithName(b.Name).WithUID(b.UID).WithController(true).WithBlockOwnerDeletion(true))
	}
	if err := r.Apply(ctx, ac, client.FieldOwner(naming.FieldManager(b.Name)), client.ForceOwnership); err != nil {
		return err
	}
	verb := "annotated"
	if !exists {
		verb = "created"
	}
	if announce && roleARN != "" {
		r.event(b, corev1.EventTypeNormal, vocab.EventServiceAccountUpdated, fmt.Sprintf("%s ServiceAccount %s with role ARN %s", verb, key.Name, roleARN))
	}
	logf.FromContext(ctx).Info("ServiceAccount "+verb, "serviceAccount", key.Name)
	return nil
}

// dropForeignRoleARN removes an IRSA role annotation that this binding did
// not set from a ServiceAccount it binds with EKS Pod Identity (a Retain
// record's, say): its pods would get a web identity token for that role,
// which the AWS SDK prefers to Pod Identity's credentials. A merge patch
// guarded by the resourceVersion, since server-side apply cannot remove
// another manager's field.
func (r *Reconciler) dropForeignRoleARN(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa *metav1.PartialObjectMetadata) error {
	foreign, ok := sa.Annotations[vocab.AnnotationRoleARN]
	if !ok || ownsAnnotation(sa, b, vocab.AnnotationRoleARN) {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:null}}}`, sa.ResourceVersion, vocab.AnnotationRoleARN)
	if err := r.Patch(ctx, sa, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("removing the IRSA annotation of ServiceAccount %s: %w", sa.Name, err)
	}
	r.event(b, corev1.EventTypeWarning, vocab.EventServiceAccountUpdated, fmt.Sprintf(
		"removed %s=%s, which this binding did not set, from ServiceAccount %s: with EKS Pod Identity its pods must not get a web identity token for another role",
		vocab.AnnotationRoleARN, foreign, sa.Name))
	return nil
}

// inSync reports whether the ServiceAccount already has every annotation the
// binding sets, and none the binding dropped (the role ARN too, under EKS
// Pod Identity).
func inSync(sa *metav1.PartialObjectMetadata, b *v1alpha1.PodIdentityBinding, want map[string]string, owned bool) bool {
	for k, v := range want {
		if sa.Annotations[k] != v {
			return false
		}
	}
	for _, k := range vocab.OperatorAnnotations {
		if _, wanted := want[k]; !wanted && ownsAnnotation(sa, b, k) {
			return false
		}
	}
	return !owned || sa.Labels[vocab.LabelManagedBy] == vocab.ManagedByValue
}

// ownsAnnotation reports whether the binding's field manager set the annotation.
func ownsAnnotation(sa *metav1.PartialObjectMetadata, b *v1alpha1.PodIdentityBinding, key string) bool {
	manager := naming.FieldManager(b.Name)
	for _, mf := range sa.ManagedFields {
		if mf.Manager == manager && managedfields.Owns(mf, managedfields.Path("metadata", "annotations", key)) {
			return true
		}
	}
	return false
}

// serviceAccountHolder names the binding that holds the ServiceAccount sa
// when it is not b ("" when b may hold it): the oldest binding claiming it
// (ties broken by name). A binding claims the ServiceAccount its spec names
// and the one its roles trust now (status), so a binding whose spec became
// invalid while moving away still holds the one it serves, and no second
// binding's role trusts it meanwhile (invariant I2).
func (r *Reconciler) serviceAccountHolder(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa string) (string, error) {
	items, err := bindingindex.Claiming(ctx, r.Client, b.Namespace, sa)
	if err != nil {
		return "", err
	}
	// b claims sa (its spec or status names it), also when the cache has
	// not seen it yet.
	oldest, at := b.Name, b.CreationTimestamp
	for i := range items {
		it := &items[i]
		t := it.CreationTimestamp
		if it.Name != b.Name && (t.Before(&at) || t.Equal(&at) && it.Name < oldest) {
			oldest, at = it.Name, t
		}
	}
	if oldest == b.Name {
		return "", nil
	}
	return oldest, nil
}

// releaseMode says how a binding lets go of a ServiceAccount.
type releaseMode int

const (
	// release removes what the binding set; a ServiceAccount it created,
	// and that nobody else has written to since, is deleted.
	release releaseMode = iota
	// retain keeps the annotations (workloads keep working) and only drops
	// the owner reference and label from a ServiceAccount the binding
	// created, so the garbage collector does not delete it with the binding.
	retain
)

// releaseServiceAccounts lets go of each named ServiceAccount. Releasing is
// an empty apply by the binding's field manager: the fields only it owned go
// away and everything else stays. Every step is idempotent, so a repeated
// reconcile (after a conflict, say) does the same thing again.
func (r *Reconciler) releaseServiceAccounts(ctx context.Context, b *v1alpha1.PodIdentityBinding, names []string, mode releaseMode) error {
	manager := naming.FieldManager(b.Name)
	for _, name := range names {
		sa := objmeta.ServiceAccountMeta()
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: name}, sa); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		created := createdBy(sa, b)
		var ac *corev1ac.ServiceAccountApplyConfiguration
		switch {
		case mode == retain && !created:
			continue
		case mode == retain:
			ac = corev1ac.ServiceAccount(name, b.Namespace).WithAnnotations(currentAnnotations(sa, b))
		case created && onlyManager(sa, manager):
			err := r.Delete(ctx, sa, client.Preconditions{UID: &sa.UID, ResourceVersion: &sa.ResourceVersion})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting ServiceAccount %s: %w", name, err)
			}
			r.event(b, corev1.EventTypeNormal, vocab.EventServiceAccountUpdated, "deleted ServiceAccount "+name+" that the binding created")
			continue
		case !hasManager(sa, manager):
			continue
		default:
			ac = corev1ac.ServiceAccount(name, b.Namespace)
		}
		if err := r.Apply(ctx, ac, client.FieldOwner(manager), client.ForceOwnership); err != nil {
			return fmt.Errorf("releasing ServiceAccount %s: %w", name, err)
		}
		if mode == retain {
			r.event(b, corev1.EventTypeNormal, vocab.EventServiceAccountUpdated, "kept the annotations on ServiceAccount "+name+" and removed its owner reference")
		} else {
			r.event(b, corev1.EventTypeNormal, vocab.EventServiceAccountUpdated, "removed the operator's annotations from ServiceAccount "+name)
		}
	}
	return nil
}

// currentAnnotations are the binding's annotations as they are on the ServiceAccount.
func currentAnnotations(sa *metav1.PartialObjectMetadata, b *v1alpha1.PodIdentityBinding) map[string]string {
	out := map[string]string{}
	for _, k := range vocab.OperatorAnnotations {
		if v, ok := sa.Annotations[k]; ok && ownsAnnotation(sa, b, k) {
			out[k] = v
		}
	}
	return out
}

func hasManager(sa *metav1.PartialObjectMetadata, manager string) bool {
	for _, mf := range sa.ManagedFields {
		if mf.Manager == manager {
			return true
		}
	}
	return false
}

// onlyManager reports whether every field on the ServiceAccount was written
// by the given manager (the API server's own bookkeeping aside).
func onlyManager(sa *metav1.PartialObjectMetadata, manager string) bool {
	for _, mf := range sa.ManagedFields {
		if mf.Manager != manager {
			return false
		}
	}
	return true
}

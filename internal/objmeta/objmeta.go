// Package objmeta reads ServiceAccounts and Namespaces metadata-only and
// trims what the operator's caches keep of every object to what it reads,
// so that memory is bounded per object whatever tenants write.
package objmeta

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/bounded"
	"github.com/podidentity/podidentity-operator/internal/intern"
	"github.com/podidentity/podidentity-operator/internal/managedfields"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// ServiceAccounts and Namespaces are read and watched metadata-only
// (annotations, labels, owners and managed fields are all the operator
// reads), so the operator's memory does not grow with the size of every
// ServiceAccount (secrets lists, image pull secrets) in the cluster. Every
// read must go through these helpers: one typed read through the cached
// client would start a second, full informer.

// ServiceAccountMeta is an empty ServiceAccount, metadata only.
func ServiceAccountMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

// NamespaceLabels reads a namespace's labels from the cache, or live from
// apiReader (when set) if the cache has not seen the namespace yet (a
// binding created right after its namespace).
func NamespaceLabels(ctx context.Context, cached, apiReader client.Reader, name string) (map[string]string, error) {
	ns := NamespaceMeta()
	err := cached.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) && apiReader != nil {
		err = apiReader.Get(ctx, client.ObjectKey{Name: name}, ns)
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// NamespaceMeta is an empty Namespace, metadata only.
func NamespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

func NamespaceMetaList() *metav1.PartialObjectMetadataList {
	m := &metav1.PartialObjectMetadataList{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	return m
}

// The cache transforms below keep out of the operator's memory what it
// never reads. What they drop is never written back: every write of these
// objects is a patch computed between two cached copies or a server-side
// apply built from scratch.

// StripApplyMetadata is the cache transform of bindings and guardrails: it
// drops their managed fields and kubectl's last-applied-configuration
// annotation (a copy of the whole object as kubectl or Argo CD's client-side
// apply last sent it).
func StripApplyMetadata(in any) (any, error) {
	o, err := apimeta.Accessor(in)
	if err != nil {
		return in, nil // a tombstone: nothing to strip
	}
	if o.GetManagedFields() != nil {
		o.SetManagedFields(nil)
	}
	dropLastApplied(o)
	return in, nil
}

// TrimBinding is the cache transform of bindings: StripApplyMetadata, then
// the strings that repeat from binding to binding (kind, namespace,
// finalizer, policies, effects, actions, condition types, statuses and
// reasons) share one copy, and those that repeat within a binding (the
// ServiceAccount's name in spec and status, the role's name in its ARN and
// its owned roles) share its first. Each decoded binding otherwise carries
// its own copy of every one: about a fifth of a cached binding. Only equal
// strings are swapped, so nothing a reader sees changes.
func TrimBinding(in any) (any, error) {
	b, ok := in.(*v1alpha1.PodIdentityBinding)
	if !ok {
		return StripApplyMetadata(in)
	}
	_, _ = StripApplyMetadata(b) // never fails on an object
	b.APIVersion, b.Kind, b.Namespace = intern.String(b.APIVersion), intern.String(b.Kind), intern.String(b.Namespace)
	for i := range b.Finalizers {
		b.Finalizers[i] = intern.String(b.Finalizers[i])
	}
	s := &b.Spec
	s.DeletionPolicy = v1alpha1.DeletionPolicy(intern.String(string(s.DeletionPolicy)))
	s.PodRestartPolicy = v1alpha1.PodRestartPolicy(intern.String(string(s.PodRestartPolicy)))
	for i := range s.Permissions {
		p := &s.Permissions[i]
		p.Effect = v1alpha1.Effect(intern.String(string(p.Effect)))
		for j := range p.Actions {
			p.Actions[j] = intern.String(p.Actions[j])
		}
	}
	st := &b.Status
	if st.ServiceAccountName == s.ServiceAccountName {
		st.ServiceAccountName = s.ServiceAccountName
	}
	if n := len(st.RoleName); n > 0 && strings.HasSuffix(st.RoleArn, "/"+st.RoleName) {
		st.RoleName = st.RoleArn[len(st.RoleArn)-n:]
	}
	for i := range st.OwnedRoles {
		if r := &st.OwnedRoles[i]; r.Name == st.RoleName {
			r.Name = st.RoleName
			if r.ID == st.RoleID {
				r.ID = st.RoleID
			}
		}
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason = intern.String(c.Type), intern.String(c.Reason)
		c.Status = metav1.ConditionStatus(intern.String(string(c.Status)))
	}
	return b, nil
}

// dropLastApplied removes kubectl's last-applied-configuration annotation.
func dropLastApplied(o metav1.Object) {
	a := o.GetAnnotations()
	if _, ok := a[corev1.LastAppliedConfigAnnotation]; !ok {
		return
	}
	delete(a, corev1.LastAppliedConfigAnnotation)
	if len(a) == 0 {
		o.SetAnnotations(nil)
	}
}

// TrimMetadata is the cache transform of ServiceAccount and Namespace
// metadata. It keeps a fresh, exactly sized copy of what the operator reads:
//   - name, namespace, UID, resource version, timestamps and finalizers;
//   - labels (managed-by on ServiceAccounts, guardrail selectors on
//     Namespaces); equal small label sets share one map;
//   - annotations (the pod webhook reads the eks.amazonaws.com ones, whoever
//     set them) but not kubectl's last-applied-configuration;
//   - of owner references, the controller's kind and UID (createdBy);
//   - of managed fields, each entry's manager and operation (hasManager,
//     onlyManager), and for the operator's own managers the list of its
//     annotations they own (ownsAnnotation, one shared copy per combination).
//
// ServiceAccounts are only ever written by server-side apply built from
// scratch or deleted with preconditions, and releases read them live, so
// nothing dropped here is written back. Cached objects are read-only (the
// cache's readers copy them), which is what lets label maps be shared.
func TrimMetadata(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil // a tombstone: nothing to trim
	}
	serviceAccount := m.Namespace != "" // Namespaces are cluster-scoped
	annotations := m.Annotations
	if serviceAccount {
		annotations = keptAnnotations(m.Annotations)
	} else {
		dropLastApplied(m)
		annotations = m.Annotations
		for k, v := range annotations {
			annotations[intern.String(k)] = v // the key is replaced by the shared copy
		}
	}
	labels, finalizers := m.Labels, m.Finalizers
	if serviceAccount {
		// Tenants write ServiceAccounts: keep only the label the operator
		// reads, and no finalizers (it reads none).
		labels, finalizers = nil, nil
		if v, ok := m.Labels[vocab.LabelManagedBy]; ok {
			labels = map[string]string{vocab.LabelManagedBy: v}
		}
	}
	out := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: intern.String(m.APIVersion), Kind: intern.String(m.Kind)},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: intern.String(m.Namespace), UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, CreationTimestamp: m.CreationTimestamp,
			DeletionTimestamp: m.DeletionTimestamp, DeletionGracePeriodSeconds: m.DeletionGracePeriodSeconds,
			Labels: sharedLabels(labels), Annotations: annotations, Finalizers: finalizers,
		},
	}
	for _, ref := range m.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			out.OwnerReferences = []metav1.OwnerReference{{APIVersion: intern.String(ref.APIVersion), Kind: intern.String(ref.Kind), UID: ref.UID, Controller: &isController}}
			break
		}
	}
	// Of managed fields, every entry of the operator's own managers and
	// the first of any other (onlyManager only needs to know one exists):
	// a tenant can apply with any number of field managers.
	other := false
	for _, mf := range m.ManagedFields {
		ours := strings.HasPrefix(mf.Manager, naming.FieldManagerPrefix)
		if !ours && other {
			continue
		}
		other = other || !ours
		kept := metav1.ManagedFieldsEntry{Manager: bounded.Text(mf.Manager, maxManagerName), Operation: metav1.ManagedFieldsOperationType(intern.String(string(mf.Operation)))}
		if ours && mf.FieldsV1 != nil {
			kept.FieldsType, kept.FieldsV1 = intern.String(mf.FieldsType), ownedAnnotationsField(mf.FieldsV1.Raw)
		}
		out.ManagedFields = append(out.ManagedFields, kept)
	}
	return out, nil
}

// maxManagerName is the API server's limit on a field manager's name.
const maxManagerName = 128

// maxAnnotationValue bounds a kept annotation's value: what the operator
// writes is an ARN (at most 2,048 characters), an audience, a boolean or a
// number. A longer value differs from what it would write, so the
// annotation is rewritten, which is what happens to any wrong value.
const maxAnnotationValue = 2048

// keptAnnotations are a ServiceAccount's annotations the operator and the
// pod webhook read (the eks.amazonaws.com ones), values bounded: tenants can
// write up to 256 KB of annotations on each ServiceAccount (issue 17,
// defect 6).
func keptAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for _, k := range vocab.OperatorAnnotations {
		v, ok := in[k]
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(vocab.OperatorAnnotations))
		}
		if len(v) > maxAnnotationValue {
			v = strings.Clone(v[:maxAnnotationValue]) // not a slice of the 256 KB original
		}
		out[k] = v
	}
	return out
}

var isController = true

// labelSets holds one copy of each small label set seen on cached
// metadata (most ServiceAccounts have none or the operator's managed-by
// label), keyed by its sorted entries.
var labelSets = intern.NewTable[map[string]string](1024)

// sharedLabels returns the shared copy of labels when it has at most four
// entries, labels itself otherwise.
func sharedLabels(labels map[string]string) map[string]string {
	if len(labels) == 0 || len(labels) > 4 {
		return labels
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var id strings.Builder
	for _, k := range keys {
		id.WriteString(k)
		id.WriteByte(0)
		id.WriteString(labels[k])
		id.WriteByte(0)
	}
	return labelSets.Shared(id.String(), labels)
}

// ownedFields holds one field set per combination of the operator's
// annotations (a handful), shared by every cached ServiceAccount.
var ownedFields = intern.NewTable[*metav1.FieldsV1](64)

// ownedAnnotationsField is a field set listing only the operator's
// annotations that fieldsV1 owns.
func ownedAnnotationsField(fieldsV1 []byte) *metav1.FieldsV1 {
	var keys []string
	set := managedfields.Set(metav1.ManagedFieldsEntry{FieldsV1: &metav1.FieldsV1{Raw: fieldsV1}})
	for _, k := range vocab.OperatorAnnotations {
		if managedfields.Holds(set, managedfields.Path("metadata", "annotations", k)) {
			keys = append(keys, `"f:`+k+`":{}`)
		}
	}
	doc := `{"f:metadata":{"f:annotations":{` + strings.Join(keys, ",") + `}}}`
	return ownedFields.Shared(doc, &metav1.FieldsV1{Raw: []byte(doc)})
}

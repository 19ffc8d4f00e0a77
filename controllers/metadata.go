package controllers

import (
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/internal/naming"
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

// NamespaceMeta is an empty Namespace, metadata only.
func NamespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

func namespaceMetaList() *metav1.PartialObjectMetadataList {
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
// metadata. Of managed fields the operator reads which managers wrote to a
// ServiceAccount (hasManager, onlyManager) and which of its annotations its
// own managers own (ownsAnnotation); of annotations, its own keys. So it
// keeps each managed-fields entry's manager and operation; the field set of
// one of its own managers becomes the list of the operator's annotations it
// owns (one shared copy per combination); other managers' field sets and
// kubectl's last-applied-configuration annotation are dropped: together most
// of the metadata of a ServiceAccount. ServiceAccounts are only ever written
// by server-side apply built from scratch or deleted with preconditions, and
// releases read them live, so nothing dropped here is written back.
func TrimMetadata(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil // a tombstone: nothing to trim
	}
	for i, mf := range m.ManagedFields {
		kept := metav1.ManagedFieldsEntry{Manager: mf.Manager, Operation: mf.Operation}
		if strings.HasPrefix(mf.Manager, naming.FieldManagerPrefix) && mf.FieldsV1 != nil {
			kept.FieldsType, kept.FieldsV1 = mf.FieldsType, ownedAnnotationsField(mf.FieldsV1.Raw)
		}
		m.ManagedFields[i] = kept
	}
	dropLastApplied(m)
	return m, nil
}

// ownedFields holds one field set per combination of the operator's
// annotations (a handful), shared by every cached ServiceAccount.
var ownedFields sync.Map // string -> *metav1.FieldsV1

// ownedAnnotationsField is a field set listing only the operator's
// annotations that fieldsV1 owns.
func ownedAnnotationsField(fieldsV1 []byte) *metav1.FieldsV1 {
	var keys []string
	for _, k := range operatorAnnotations {
		if containsAnnotation(fieldsV1, k) {
			keys = append(keys, `"f:`+k+`":{}`)
		}
	}
	doc := `{"f:metadata":{"f:annotations":{` + strings.Join(keys, ",") + `}}}`
	if f, ok := ownedFields.Load(doc); ok {
		return f.(*metav1.FieldsV1)
	}
	f, _ := ownedFields.LoadOrStore(doc, &metav1.FieldsV1{Raw: []byte(doc)})
	return f.(*metav1.FieldsV1)
}

package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAccounts and Namespaces are read and watched metadata-only
// (annotations, labels, owners and managed fields are all the operator
// reads), so the operator's memory does not grow with the size of every
// ServiceAccount (secrets lists, image pull secrets) in the cluster. Every
// read must go through these helpers: one typed read through the cached
// client would start a second, full informer.

func serviceAccountMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

func namespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

func namespaceMetaList() *metav1.PartialObjectMetadataList {
	m := &metav1.PartialObjectMetadataList{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	return m
}

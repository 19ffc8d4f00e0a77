package controllers

import (
	"context"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// Each controller writes its own part of a binding's status with
// server-side apply under its own field manager, so that neither can revert
// the other's fields from a stale copy (one writer per status field): the
// pods controller owns status.pods and the PodsCurrent condition, the
// binding reconciler everything else.
const (
	StatusManagerBinding = "podidentity-binding-status"
	StatusManagerPods    = "podidentity-pods-status"
)

// bindingStatusPart is the binding reconciler's part of status.
func bindingStatusPart(s v1alpha1.PodIdentityBindingStatus) v1alpha1.PodIdentityBindingStatus {
	s.Pods = nil
	s.Conditions = conditionsExcept(s.Conditions, v1alpha1.ConditionPodsCurrent)
	return s
}

// podsStatusPart is the pods controller's part of status.
func podsStatusPart(s v1alpha1.PodIdentityBindingStatus) v1alpha1.PodIdentityBindingStatus {
	out := v1alpha1.PodIdentityBindingStatus{Pods: s.Pods}
	for _, c := range s.Conditions {
		if c.Type == v1alpha1.ConditionPodsCurrent {
			out.Conditions = append(out.Conditions, c)
		}
	}
	return out
}

// conditionsExcept is a copy of cs without the condition of type t.
func conditionsExcept(cs []metav1.Condition, t string) []metav1.Condition {
	return slices.DeleteFunc(slices.Clone(cs), func(c metav1.Condition) bool { return c.Type == t })
}

// applyStatus applies part (and only it) to the binding's status under
// manager. Fields the manager applied before and part leaves out are
// removed, unless another manager also owns them.
func applyStatus(ctx context.Context, w client.SubResourceWriter, b *v1alpha1.PodIdentityBinding, manager string, part v1alpha1.PodIdentityBindingStatus) error {
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&part)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("PodIdentityBinding")
	u.SetNamespace(b.Namespace)
	u.SetName(b.Name)
	return w.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership)
}

// Package bindingstatus writes a binding's status: each controller applies
// its own part under its own field manager (vocab.StatusManagerBinding,
// vocab.StatusManagerPods), conditions are set with bounded messages, and
// events about a binding carry bounded notes.
package bindingstatus

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/bounded"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// BindingPart is the binding reconciler's part of status.
func BindingPart(s v1alpha1.PodIdentityBindingStatus) v1alpha1.PodIdentityBindingStatus {
	s.Pods = nil
	s.Conditions = conditionsExcept(s.Conditions, v1alpha1.ConditionPodsCurrent)
	return s
}

// PodsPart is the pods controller's part of status.
func PodsPart(s v1alpha1.PodIdentityBindingStatus) v1alpha1.PodIdentityBindingStatus {
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

// Apply applies part (and only it) to the binding's status under
// manager. Fields the manager applied before and part leaves out are
// removed, unless another manager also owns them.
func Apply(ctx context.Context, w client.SubResourceWriter, b *v1alpha1.PodIdentityBinding, manager string, part v1alpha1.PodIdentityBindingStatus) error {
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

// RecordEvent emits an event about a binding, its note cut to the API's
// limit (bounded.EventNote).
func RecordEvent(rec events.EventRecorder, b *v1alpha1.PodIdentityBinding, eventType string, reason vocab.EventReason, note string) {
	if rec == nil {
		return
	}
	rec.Eventf(b, nil, eventType, string(reason), "Reconcile", "%s", bounded.Text(note, bounded.EventNote))
}

// SetCondition sets a condition for the binding's current generation; the
// transition time changes only when the status does. The message is cut to
// bounded.ConditionMessage: a message the API server refuses would fail the
// whole status patch (decision 58).
func SetCondition(b *v1alpha1.PodIdentityBinding, condType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: bounded.Text(msg, bounded.ConditionMessage), ObservedGeneration: b.Generation,
	})
}

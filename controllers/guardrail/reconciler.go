// Package guardrail holds the PodIdentityGuardrail reconciler (its status:
// which bindings it selects and which violate it) and Source, the rules
// that apply to a namespace, which every other controller reads.
package guardrail

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	corev1 "k8s.io/api/core/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
)

// maxListedViolations bounds status.violations.
const maxListedViolations = 20

// Reconciler keeps a PodIdentityGuardrail's status: how many
// bindings it selects and how many violate it.
type Reconciler struct {
	client.Client
	Guard guard.Checker
}

// Reconcile recomputes the guardrail's counts.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &v1alpha1.PodIdentityGuardrail{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&g.Spec.NamespaceSelector)
	if err != nil {
		sel = labels.Everything()
	}
	namespaces := objmeta.NamespaceMetaList()
	if err := r.List(ctx, namespaces); err != nil {
		return ctrl.Result{}, err
	}
	// Only this guardrail's own findings count, not the built-ins or others.
	checker := r.Guard
	checker.Builtins = false
	rule := []guard.Rule{guard.FromGuardrail(g)}

	status := v1alpha1.PodIdentityGuardrailStatus{ObservedGeneration: g.Generation}
	for _, ns := range namespaces.Items {
		if !sel.Matches(labels.Set(ns.Labels)) {
			continue
		}
		// Read only (the guard does not modify what it checks): no copy
		// of every binding at every guardrail reconcile.
		bindings := &v1alpha1.PodIdentityBindingList{}
		if err := r.List(ctx, bindings, client.InNamespace(ns.Name), client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, err
		}
		for i := range bindings.Items {
			b := &bindings.Items[i]
			status.SelectedBindings++
			// Managed policy documents are not read here (no IAM calls per
			// guardrail change); the reconciler checks them.
			res := checker.Check(b, rule, nil)
			if len(res.Violations) == 0 {
				continue
			}
			status.ViolatingBindings++
			if len(status.Violations) < maxListedViolations {
				status.Violations = append(status.Violations, fmt.Sprintf("%s/%s: %s", b.Namespace, b.Name, res.Violations[0].String()))
			}
		}
	}
	if equality.Semantic.DeepEqual(g.Status, status) {
		return ctrl.Result{}, nil
	}
	before := g.DeepCopy()
	g.Status = status
	return ctrl.Result{}, r.Status().Patch(ctx, g, client.MergeFrom(before))
}

// SetupWithManager watches guardrails, bindings and namespaces.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := &v1alpha1.PodIdentityGuardrailList{}
		if err := r.List(ctx, list); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	})
	// Only what changes the counts: a guardrail's spec, a binding created,
	// deleted or given a new spec, a namespace created, deleted or
	// relabelled. Status writes (the reconcilers' own) change nothing here:
	// without these filters every binding's status write re-counted every
	// guardrail.
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PodIdentityGuardrail{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.PodIdentityBinding{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, all, builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Named("podidentityguardrail").
		Complete(r)
}

// Package guardrail holds the PodIdentityGuardrail reconciler (its status:
// which bindings it selects and which violate it) and Source, the rules
// that apply to a namespace, which every other controller reads.
package guardrail

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
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

// recountAfter is how long a binding change waits before the guardrails
// selecting its namespace count again: the changes of that time are
// counted together, so a tenant creating and deleting bindings in a loop
// costs each guardrail one count per recountAfter, not one per change
// (issue 17, defect 4; I7).
const recountAfter = 2 * time.Second

// Reconciler keeps a PodIdentityGuardrail's status: how many
// bindings it selects and how many violate it.
type Reconciler struct {
	client.Client
	Guard guard.Checker

	// verdicts remembers each guardrail's verdict on each binding
	// generation, so a count checks only bindings that changed.
	mu       sync.Mutex
	verdicts map[string]*verdicts
}

// verdicts are one guardrail generation's verdicts, by binding UID.
type verdicts struct {
	uid        types.UID
	generation int64
	bindings   map[types.UID]verdict
}

// verdict is a guardrail's finding on one binding generation ("" when it
// complies).
type verdict struct {
	generation int64
	violation  string
}

// Reconcile recomputes the guardrail's counts.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &v1alpha1.PodIdentityGuardrail{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		if apierrors.IsNotFound(err) {
			r.remember(req.Name, nil)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	namespaces := objmeta.NamespaceMetaList()
	if err := r.List(ctx, namespaces); err != nil {
		return ctrl.Result{}, err
	}
	// Only this guardrail's own findings count, not the built-ins or others.
	checker := r.Guard
	checker.Builtins = false
	rule := []guard.Rule{guard.FromGuardrail(g)}

	known := r.recall(g)
	seen := &verdicts{uid: g.UID, generation: g.Generation, bindings: make(map[types.UID]verdict, len(known))}
	status := v1alpha1.PodIdentityGuardrailStatus{ObservedGeneration: g.Generation}
	for _, ns := range namespaces.Items {
		if !selects(g, ns.Labels) {
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
			v, ok := known[b.UID]
			if !ok || v.generation != b.Generation {
				// Managed policy documents are not read here (no IAM calls
				// per guardrail change); the reconciler checks them.
				v = verdict{generation: b.Generation}
				if res := checker.Check(b, rule, nil); len(res.Violations) > 0 {
					v.violation = fmt.Sprintf("%s/%s: %s", b.Namespace, b.Name, res.Violations[0].String())
				}
			}
			seen.bindings[b.UID] = v
			if v.violation == "" {
				continue
			}
			status.ViolatingBindings++
			if len(status.Violations) < maxListedViolations {
				status.Violations = append(status.Violations, v.violation)
			}
		}
	}
	r.remember(g.Name, seen)
	if equality.Semantic.DeepEqual(g.Status, status) {
		return ctrl.Result{}, nil
	}
	before := g.DeepCopy()
	g.Status = status
	return ctrl.Result{}, r.Status().Patch(ctx, g, client.MergeFrom(before))
}

// recall returns the verdicts of the guardrail's current generation on the
// bindings it selected at its last count.
func (r *Reconciler) recall(g *v1alpha1.PodIdentityGuardrail) map[types.UID]verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.verdicts[g.Name]; v != nil && v.uid == g.UID && v.generation == g.Generation {
		return v.bindings
	}
	return nil
}

// remember keeps the verdicts of the last count (only the bindings it saw,
// so memory follows the bindings that exist); nil forgets the guardrail.
func (r *Reconciler) remember(name string, v *verdicts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v == nil {
		delete(r.verdicts, name)
		return
	}
	if r.verdicts == nil {
		r.verdicts = map[string]*verdicts{}
	}
	r.verdicts[name] = v
}

// SetupWithManager watches guardrails, bindings and namespaces.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return r.allRequests(ctx)
	})
	// A binding created, deleted or given a new spec is counted by the
	// guardrails selecting its namespace, recountAfter later.
	source := Source{Reader: r.Client}
	recount := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		// Names only: no copy of every guardrail on every binding event.
		selected, err := source.selecting(ctx, o.GetNamespace(), client.UnsafeDisableDeepCopy)
		if err != nil {
			// The namespace is gone or not cached yet: every guardrail counts.
			for _, req := range r.allRequests(ctx) {
				q.AddAfter(req, recountAfter)
			}
			return
		}
		for _, g := range selected {
			q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(g)}, recountAfter)
		}
	}
	bindings := handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			recount(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			recount(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			recount(ctx, e.Object, q)
		},
	}
	// Only what changes the counts: a guardrail's spec, a binding created,
	// deleted or given a new spec, a namespace created, deleted or
	// relabelled. Status writes (the reconcilers' own) change nothing here:
	// without these filters every binding's status write re-counted every
	// guardrail.
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PodIdentityGuardrail{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.PodIdentityBinding{}, bindings, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, all, builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Named("podidentityguardrail").
		Complete(r)
}

func (r *Reconciler) allRequests(ctx context.Context) []reconcile.Request {
	list := &v1alpha1.PodIdentityGuardrailList{}
	if err := r.List(ctx, list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

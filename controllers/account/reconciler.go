// Package account holds the PodIdentityAccount reconciler: it reports
// whether the operator can act in the account (its role assumed, in the
// right account) and which namespaces it serves or contests.
package account

import (
	"context"
	"errors"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/bounded"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
)

// maxListedConflicts bounds status.conflictingNamespaces.
const maxListedConflicts = 20

// Builder builds (or returns the cached) account of a PodIdentityAccount
// (accounts.Registry).
type Builder interface {
	ByKey(ctx context.Context, key string) (*accounts.Account, error)
	Forget(name string)
}

// Reconciler writes PodIdentityAccount status.
type Reconciler struct {
	client.Client
	Accounts   Builder
	SyncPeriod time.Duration
}

// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentityaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentityaccounts/status,verbs=get;update;patch

// Reconcile checks the account's credentials and counts its namespaces.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &v1alpha1.PodIdentityAccount{}
	if err := r.Get(ctx, req.NamespacedName, a); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Accounts.Forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := a.Status.DeepCopy()
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAssumed,
		Message: "the operator assumed " + a.Spec.RoleARN + " and acts in account " + a.Spec.AccountID}
	if _, err := r.Accounts.ByKey(ctx, a.Spec.AccountID); err != nil {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, v1alpha1.ReasonAssumeRoleFailed, err.Error()
		switch {
		case errors.Is(err, accounts.ErrAccountMismatch):
			ready.Reason = v1alpha1.ReasonAccountMismatch
		case errors.Is(err, accounts.ErrInvalidSpec):
			ready.Reason = v1alpha1.ReasonInvalidSpec
		}
	}
	ready.Message = bounded.Text(ready.Message, bounded.ConditionMessage)
	ready.ObservedGeneration = a.Generation
	meta.SetStatusCondition(&a.Status.Conditions, ready)

	all := &v1alpha1.PodIdentityAccountList{}
	if err := r.List(ctx, all); err != nil {
		return ctrl.Result{}, err
	}
	namespaces := objmeta.NamespaceMetaList()
	if err := r.List(ctx, namespaces); err != nil {
		return ctrl.Result{}, err
	}
	a.Status.Namespaces, a.Status.ConflictingNamespaces = 0, nil
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		if !accounts.Selects(a, ns.Labels) {
			continue
		}
		contested := slices.ContainsFunc(all.Items, func(o v1alpha1.PodIdentityAccount) bool {
			return o.Name != a.Name && accounts.Selects(&o, ns.Labels)
		})
		switch {
		case !contested:
			a.Status.Namespaces++
		case len(a.Status.ConflictingNamespaces) < maxListedConflicts:
			a.Status.ConflictingNamespaces = append(a.Status.ConflictingNamespaces, ns.Name)
		}
	}
	slices.Sort(a.Status.ConflictingNamespaces)
	a.Status.ObservedGeneration = a.Generation
	if !equality.Semantic.DeepEqual(before, &a.Status) {
		if err := r.Status().Update(ctx, a); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	// Credentials can stop working without any event: look again every
	// sync period. The session is cached until shortly before it expires
	// (a trust edited meanwhile does not end it in AWS either), so a lost
	// trust shows when it next refreshes, or at the next generation.
	return ctrl.Result{RequeueAfter: r.SyncPeriod}, nil
}

// SetupWithManager watches accounts and namespace labels.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PodIdentityAccount{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A namespace created, deleted or relabelled changes what accounts serve.
		Watches(objmeta.NamespaceMeta(), handler.EnqueueRequestsFromMapFunc(r.allAccounts),
			builder.WithPredicates(predicate.LabelChangedPredicate{}), builder.OnlyMetadata).
		Named("podidentityaccount").
		Complete(r)
}

func (r *Reconciler) allAccounts(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &v1alpha1.PodIdentityAccountList{}
	if err := r.List(ctx, list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, a := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
	}
	return reqs
}

// Package binding holds the PodIdentityBinding reconciler: it gathers what
// a binding needs, asks the planner for the whole outcome, applies it and
// reports it, and its drift sweep finds what changed in IAM for every
// binding at once.
package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/bindingindex"
	"github.com/podidentity/podidentity-operator/internal/bindingstatus"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/planner"
	"github.com/podidentity/podidentity-operator/internal/role"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// ProviderWatch reports the cluster's OIDC provider (oidcprovider.Watcher in
// production): its state, and an event whenever that changes.
type ProviderWatch interface {
	State() oidcprovider.State
	Changes() <-chan event.GenericEvent
}

// RoleClient observes and changes IAM roles (role.Client in production).
type RoleClient interface {
	// Observe returns nil and no error when the role does not exist.
	Observe(ctx context.Context, name string) (*role.Observed, error)
	// Create returns the ARN and ID as soon as the role exists, also when a
	// later step fails.
	Create(ctx context.Context, d role.Desired) (arn, id string, err error)
	Apply(ctx context.Context, d role.Desired, p role.Plan) error
	// Delete deletes the role if it is still the one with the given ID
	// (the one the plan was made against).
	Delete(ctx context.Context, name, id string) error
}

// AccountSource says which AWS account holds a binding's roles
// (accounts.Registry).
type AccountSource interface {
	// For is the account a namespace's bindings get their roles in.
	For(ctx context.Context, namespace string) (*accounts.Account, error)
	// ByKey is an account status names ("" the operator's own).
	ByKey(ctx context.Context, key string) (*accounts.Account, error)
}

// acct is one AWS account as a reconcile acts in it.
type acct struct {
	key      string
	roles    RoleClient
	policies PolicyReader
	config   role.Config
	guard    guard.Checker
	provider func() *oidcprovider.State
}

// home is the operator's own account.
func (r *Reconciler) home() acct {
	a := acct{key: accounts.Home, roles: r.Roles, policies: r.Policies, config: r.Config, guard: r.Guard}
	if r.Provider != nil {
		a.provider = func() *oidcprovider.State { s := r.Provider.State(); return &s }
	}
	return a
}

// acctOf is how a reconcile acts in an account of the registry.
func (r *Reconciler) acctOf(ctx context.Context, a *accounts.Account) acct {
	if a.Key == accounts.Home {
		return r.home()
	}
	out := acct{key: a.Key, roles: role.Client{IAM: a.IAM}, policies: a.Policies, config: a.Config, guard: a.Guard}
	if a.Roles != nil {
		out.roles = a.Roles
	}
	if a.Provider != nil {
		out.provider = func() *oidcprovider.State {
			s := a.Provider.State()
			if !s.Known && s.Err == nil {
				s = a.Provider.Check(ctx)
			}
			return &s
		}
	}
	return out
}

// accountsOf are the accounts a reconcile acts in: the one the binding's
// roles belong in now (for a deleted binding, the one status names: it
// gets no new role), and every other account that still holds a role of
// the binding (it moved), by key. It fails when an account cannot be
// reached or the namespace is contested: nothing is then planned, so no
// role is created in one account while another still trusts the same
// ServiceAccount.
func (r *Reconciler) accountsOf(ctx context.Context, b *v1alpha1.PodIdentityBinding) (acct, map[string]acct, error) {
	if r.Accounts == nil {
		return r.home(), nil, nil
	}
	var (
		a   *accounts.Account
		err error
	)
	if b.DeletionTimestamp.IsZero() {
		a, err = r.Accounts.For(ctx, b.Namespace)
	} else {
		a, err = r.Accounts.ByKey(ctx, b.Status.Account)
	}
	if err != nil {
		return acct{}, nil, err
	}
	cur := r.acctOf(ctx, a)
	others := map[string]acct{}
	keys := recordedAccounts(b)
	if r.chained(cur, b) {
		keys = append(keys, accounts.Home) // the hop role's account
	}
	if r.Sweep != nil {
		// Accounts where IAM's tags name a role of the binding its status
		// forgot (a refused status patch during a move) are reached too.
		for _, k := range r.Sweep.TaggedAccounts(b.Namespace, b.Name) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	for _, key := range keys {
		if key == cur.key {
			continue
		}
		o, err := r.Accounts.ByKey(ctx, key)
		if err != nil {
			return acct{}, nil, err
		}
		others[key] = r.acctOf(ctx, o)
	}
	return cur, others, nil
}

// chained reports whether a plan may reach a role of the binding through a
// hop role in the cluster's (the operator's own) account (planner.Chain):
// EKS Pod Identity, which the account holding the binding's roles offers
// through the cluster's associations, in another account than the
// cluster's (deleted bindings too, so the hop is seen and retired); or a
// current role status records in another account, bound that way, which a
// plan may keep while the namespace's roles belong elsewhere now (the new
// account's role name is taken, the spec is invalid). Rendered without the
// chain, that role would trust the ServiceAccount directly while the hop
// still does (I2).
func (r *Reconciler) chained(cur acct, b *v1alpha1.PodIdentityBinding) bool {
	if r.Associations == nil {
		return false
	}
	if cur.key != accounts.Home && cur.config.PodIdentity != nil &&
		(cur.config.Mechanism(b).Kind() == identity.KindEKSPodIdentity || b.Status.Identity == v1alpha1.IdentityEKSPodIdentity) {
		return true
	}
	return b.Status.Account != accounts.Home && b.Status.RoleName != "" && b.Status.Identity == v1alpha1.IdentityEKSPodIdentity
}

// swept reports whether the drift sweep watches every role of the
// binding: they are all, and belong, in one account the sweep reads.
func (r *Reconciler) swept(ctx context.Context, b *v1alpha1.PodIdentityBinding) bool {
	if r.Sweep == nil {
		return false
	}
	key := accounts.Home
	if r.Accounts != nil {
		a, err := r.Accounts.For(ctx, b.Namespace)
		if err != nil {
			return false
		}
		key = a.Key
	}
	return r.sweptIn(b, key)
}

// sweptIn reports whether the sweep reads the account and status records
// roles in no other.
func (r *Reconciler) sweptIn(b *v1alpha1.PodIdentityBinding, account string) bool {
	return r.Sweep != nil && r.Sweep.covers(account) && recordedOnlyIn(b, account)
}

// recordedOnlyIn reports whether status records roles in no other account.
func recordedOnlyIn(b *v1alpha1.PodIdentityBinding, account string) bool {
	return !slices.ContainsFunc(recordedAccounts(b), func(k string) bool { return k != account })
}

// recordedAccounts are the accounts status records roles in.
func recordedAccounts(b *v1alpha1.PodIdentityBinding) []string {
	var keys []string
	if b.Status.RoleName != "" {
		keys = append(keys, b.Status.Account)
	}
	for _, o := range b.Status.OwnedRoles {
		if !slices.Contains(keys, o.Account) {
			keys = append(keys, o.Account)
		}
	}
	return keys
}

// PolicyReader reads the default versions of managed policies.
type PolicyReader interface {
	Read(ctx context.Context, arns []string) (guard.Managed, error)
}

// Reconciler converges a PodIdentityBinding: the IAM role, its trust and
// permission policies, and the ServiceAccount annotation.
type Reconciler struct {
	client.Client
	// APIReader reads ServiceAccounts live where the cache could be stale.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Roles     RoleClient
	// Policies reads managed policy documents for the guardrail checks.
	Policies PolicyReader
	Config   role.Config
	// Guard checks specs, quotas and guardrails before anything reaches IAM.
	Guard      guard.Checker
	Guardrails guardrail.Source
	// Provider reports the cluster's OIDC provider; nil skips the check.
	Provider ProviderWatch
	// Accounts says which AWS account holds each namespace's roles
	// (PodIdentityAccount); nil: every role is in the operator's own
	// account, the one Roles, Policies, Config, Guard and Provider act in.
	Accounts AccountSource
	// Associations manages the cluster's EKS pod identity associations;
	// nil when the operator runs without --eks-cluster-name.
	Associations AssociationClient
	// Sweep, when set, detects drift for every binding at once (see
	// Sweeper); bindings are then not re-read from IAM every sync period.
	Sweep *Sweeper
	// SyncPeriod is how often an in-sync binding is checked for drift (jittered by up to 10%).
	SyncPeriod time.Duration
	// MaxBackoff caps the per-binding exponential back-off after retryable
	// failures (default a minute).
	MaxBackoff              time.Duration
	MaxConcurrentReconciles int
	// NamespaceChangeQPS and NamespaceChangeBurst are each namespace's
	// budget of changes (bindings created, edited or deleted) handled per
	// second; 0 leaves it unbounded. See budget.
	NamespaceChangeQPS   float64
	NamespaceChangeBurst int
	budget               *budget
}

// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:urls=/.well-known/openid-configuration,verbs=get
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=podidentitybindings.iam.podidentity.io,verbs=get

// Reconcile fetches the binding, defers one status patch and branches into
// reconcileNormal or reconcileDelete.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	b := &v1alpha1.PodIdentityBinding{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		if apierrors.IsNotFound(err) {
			r.budget.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !charged(b) {
		r.budget.settled(req.NamespacedName)
	} else if !r.budget.take(b) {
		logf.FromContext(ctx).V(1).Info("waiting in line for the namespace's budget of changes")
		return ctrl.Result{}, nil
	}
	log := logf.FromContext(ctx).WithValues("serviceAccount", b.Spec.ServiceAccountName, "generation", b.Generation)
	ctx = logf.IntoContext(ctx, log)

	before := b.DeepCopy()
	defer func() {
		part := bindingstatus.BindingPart(b.Status)
		if equality.Semantic.DeepEqual(bindingstatus.BindingPart(before.Status), part) {
			return
		}
		if err := bindingstatus.Apply(ctx, r.Status(), b, vocab.StatusManagerBinding, part); err != nil && !apierrors.IsNotFound(err) {
			r.statusWriteFailed(b, err)
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !b.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(b, vocab.Finalizer) {
			return ctrl.Result{}, nil
		}
		bindingstatus.SetCondition(b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleting, "cleaning up the IAM role and ServiceAccount annotation")
		return r.converge(ctx, b)
	}
	if !controllerutil.ContainsFinalizer(b, vocab.Finalizer) {
		controllerutil.AddFinalizer(b, vocab.Finalizer)
		if err := r.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		before = b.DeepCopy()
	}
	return r.converge(ctx, b)
}

// gather reads everything the planner needs: guardrails, the spec's managed
// policy documents, the ServiceAccount's holder and every candidate role.
// It has no side effects.
func (r *Reconciler) gather(ctx context.Context, b *v1alpha1.PodIdentityBinding) (planner.Input, gathered, error) {
	cur, others, err := r.accountsOf(ctx, b)
	if err != nil {
		return planner.Input{Binding: b}, gathered{}, err
	}
	route := map[string]acct{cur.key: cur}
	for k, a := range others {
		route[k] = a
	}
	unread := r.unreadTarget(b, cur)
	observe := func(ctx context.Context, key string) (*role.Observed, error) {
		if key == unread {
			return nil, nil
		}
		account, name := planner.SplitKey(key)
		return route[account].roles.Observe(ctx, name)
	}
	in, err := r.gatherWith(ctx, b, cur, others, observe, cur.policies)
	if err != nil {
		return in, gathered{}, err
	}
	g := gathered{route: route}
	// An association of the ServiceAccount that the binding does not own
	// means it cannot hold the ServiceAccount with EKS Pod Identity: the
	// planner must know before any role trusts it.
	if r.Associations != nil && b.DeletionTimestamp.IsZero() && cur.config.Mechanism(b).Kind() == identity.KindEKSPodIdentity {
		sa := b.Spec.ServiceAccountName
		a, err := podIdentityBinder{r: r}.lookup(ctx, b, sa)
		if err != nil {
			return in, gathered{}, eksFailed("reading the EKS pod identity association of "+sa, err)
		}
		g.assoc = &lookedUp{sa: sa, a: a}
		if a != nil && !ownsAssociation(r.Config, a, b) {
			in.ForeignAssociation = associationConflict{sa: sa, id: a.ID, roleARN: a.RoleARN}.Error()
		} else if a != nil && in.Chain != nil && a.TargetRoleARN != "" {
			in.Chain.ExternalID = a.ExternalID
		}
	}
	return in, g, nil
}

// gathered is what a reconcile read besides the planner's input: how to
// reach each account, and the association it looked up.
type gathered struct {
	route map[string]acct
	assoc *lookedUp
}

// AbsenceKnower knows that a role does not exist without reading IAM
// (role.Cache, from the drift sweep's snapshot).
type AbsenceKnower interface {
	Absent(name string) bool
}

// unreadTarget is the binding's generated role name when gather may take it
// as absent without a GetRole, so that a new binding costs IAM only its two
// writes: the binding is not being deleted, nothing records the name as the
// binding's (status or IAM's ownership tags), and the fresh snapshot does
// not list it. The planner can then only plan to create it (a role it has
// not observed is never the binding's, so nothing is updated, kept or
// deleted under that name); if the role exists after all, CreateRole fails
// and the retry reads it. "" when the name must be read.
func (r *Reconciler) unreadTarget(b *v1alpha1.PodIdentityBinding, cur acct) string {
	known, ok := cur.roles.(AbsenceKnower)
	// An explicit spec.roleName may well name an existing role (of another
	// path, or someone else's): it is read, so a conflict shows at once.
	if !ok || !b.DeletionTimestamp.IsZero() || r.Sweep == nil || b.Spec.RoleName != "" {
		return ""
	}
	target := role.Name(cur.config, b)
	if planner.Key(b.Status.Account, b.Status.RoleName) == planner.Key(cur.key, target) ||
		slices.ContainsFunc(b.Status.OwnedRoles, func(o v1alpha1.RoleReference) bool { return o.Name == target && o.Account == cur.key }) ||
		slices.Contains(r.Sweep.TaggedFor(cur.key, b.Namespace, b.Name), target) || !known.Absent(target) {
		return ""
	}
	return planner.Key(cur.key, target)
}

// gatherWith is gather with the roles and managed policies read through
// observe and policies: IAM for a reconcile, a snapshot for the drift sweep.
func (r *Reconciler) gatherWith(ctx context.Context, b *v1alpha1.PodIdentityBinding, cur acct, others map[string]acct,
	observe func(ctx context.Context, key string) (*role.Observed, error), policies PolicyReader) (planner.Input, error) {
	in := planner.Input{Binding: b, Account: cur.key, Config: cur.config, Guard: cur.guard, Roles: map[string]*role.Observed{}}
	for k, a := range others {
		if in.Configs == nil {
			in.Configs = map[string]role.Config{}
		}
		in.Configs[k] = a.config
	}
	rules, err := r.Guardrails.RulesFor(ctx, b.Namespace)
	if err != nil && !(apierrors.IsNotFound(err) && !b.DeletionTimestamp.IsZero()) {
		return in, err
	}
	in.Rules = rules
	if b.DeletionTimestamp.IsZero() {
		if in.Managed, err = policies.Read(ctx, b.Spec.ManagedPolicyArns); err != nil {
			return in, err
		}
		if in.Holder, err = r.serviceAccountHolder(ctx, b, b.Spec.ServiceAccountName); err != nil {
			return in, err
		}
		if sa := b.Status.ServiceAccountName; sa != "" && sa != b.Spec.ServiceAccountName {
			if in.CurrentHolder, err = r.serviceAccountHolder(ctx, b, sa); err != nil {
				return in, err
			}
		}
	}
	if cur.provider != nil {
		in.Provider = cur.provider()
	}
	if !b.DeletionTimestamp.IsZero() {
		if in.KeepRoles, err = r.crdBeingDeleted(ctx); err != nil {
			return in, err
		}
	}
	names := planner.Candidates(cur.config, cur.key, b)
	if r.chained(cur, b) {
		in.Chain = &planner.Chain{Home: r.Config}
		if hop := planner.HopKey(r.Config, b); !slices.Contains(names, hop) {
			names = append(names, hop)
		}
	}
	if r.Sweep != nil {
		// Roles IAM's tags say are the binding's, recorded in status or not.
		keys := []string{cur.key}
		for k := range others {
			keys = append(keys, k)
		}
		for _, k := range keys {
			for _, n := range r.Sweep.TaggedFor(k, b.Namespace, b.Name) {
				if key := planner.Key(k, n); !slices.Contains(names, key) {
					names = append(names, key)
				}
			}
		}
	}
	for _, name := range names {
		obs, err := observe(ctx, name)
		if err != nil {
			return in, err
		}
		in.Roles[name] = obs
	}
	return in, nil
}

// converge gathers, plans, applies and reports. Every path of a binding
// (normal, conflicts, invalid spec, deletion) goes through it.
func (r *Reconciler) converge(ctx context.Context, b *v1alpha1.PodIdentityBinding) (ctrl.Result, error) {
	in, g, err := r.gather(ctx, b)
	if err != nil {
		return r.failure(ctx, b, err)
	}
	p := planner.Compute(in)
	logf.FromContext(ctx).V(1).Info("planned", "policy", p.Policy, "current", p.Current, "reason", p.Reason)
	if err := r.apply(ctx, b, in, p, g); err != nil {
		return r.failure(ctx, b, err)
	}
	return r.report(ctx, b, in, p), nil
}

// apply makes the plan's steps in order and records in status what each
// step changed as soon as it did; it stops at the first error.
func (r *Reconciler) apply(ctx context.Context, b *v1alpha1.PodIdentityBinding, in planner.Input, p planner.Plan, g gathered) error {
	route := g.route
	for name, id := range p.Owned {
		recordOwned(b, name, id)
	}
	for _, key := range p.Forget {
		forgetOwned(b, key)
	}
	wasSynced := isTrueForGeneration(b, v1alpha1.ConditionRoleSynced)
	arns := map[string]string{}
	for name, obs := range in.Roles {
		if obs != nil {
			arns[name] = obs.ARN
		}
	}
	actions := func(actions []planner.Action) error {
		for _, a := range actions {
			if err := r.applyAction(ctx, b, a, wasSynced, arns, p.ServiceAccount, route); err != nil {
				return err
			}
		}
		return nil
	}
	if err := actions(p.Before); err != nil {
		return err
	}
	// The roles are as planned: say so now, whatever a later step says.
	if c := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionRoleSynced); c != nil {
		bindingstatus.SetCondition(b, c.Type, c.Status, c.Reason, c.Message)
	}
	if kept := retainedNow(p.Before); in.KeepRoles && kept > 0 {
		// Counted once per role: a retried reconcile finds them tagged.
		rolesKeptOnCRDDeletion.Add(float64(kept))
		r.event(b, corev1.EventTypeWarning, vocab.EventCRDDeleted, fmt.Sprintf(
			"the PodIdentityBinding CRD is being deleted: kept %d IAM role(s) of this binding, tagged %s=true, and the ServiceAccount annotations; delete the roles by hand if they are no longer needed",
			kept, role.TagRetained))
	}
	if p.Bind != nil {
		arn := arns[p.Current]
		account, name := planner.SplitKey(p.Current)
		b.Status.Account, b.Status.RoleName, b.Status.RoleArn, b.Status.RoleID = account, name, arn, planner.KnownID(b, p.Current)
		// A role created by this reconcile was announced with its
		// ServiceAccount (RoleCreated): binding the ServiceAccount to it is
		// part of that, not a second event.
		announce := in.Roles[p.Current] != nil
		var chain *chainBind
		if p.Bind.Hop != "" {
			chain = &chainBind{hopARN: arns[p.Bind.Hop]}
		}
		if err := r.binderFor(p.Bind.Identity, g.assoc, chain).bind(ctx, b, p.Bind.ServiceAccount, arn, announce); err != nil {
			return bindError{sa: p.Bind.ServiceAccount, err: err}
		}
		if chain != nil && in.Chain != nil && chain.externalID != in.Chain.ExternalID {
			// The target role was planned with another external ID than
			// the association has (it was just created or replaced): plan
			// again with the association's.
			return trustPending{}
		}
		for _, k := range p.Bind.Unbind {
			if err := r.binderFor(k, nil, nil).unbind(ctx, b, p.Bind.ServiceAccount, release); err != nil {
				return err
			}
		}
		b.Status.Identity = v1alpha1.Identity(p.Bind.Identity)
		if err := r.releaseAll(ctx, b, p.Bind.Previous); err != nil {
			return err
		}
		b.Status.ServiceAccountName = p.Bind.ServiceAccount
	}
	if err := r.releaseAll(ctx, b, p.Release); err != nil {
		return err
	}
	if p.Release != nil && !p.RemoveFinalizer {
		b.Status.Account, b.Status.RoleName, b.Status.RoleArn, b.Status.RoleID, b.Status.ServiceAccountName = "", "", "", "", ""
		b.Status.Identity, b.Status.AssociationID = "", ""
	}
	if err := actions(p.After); err != nil {
		return err
	}
	if p.RemoveFinalizer {
		before := b.DeepCopy()
		controllerutil.RemoveFinalizer(b, vocab.Finalizer)
		if err := r.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	return nil
}

// releaseAll makes one planned release (nil: none).
func (r *Reconciler) releaseAll(ctx context.Context, b *v1alpha1.PodIdentityBinding, rel *planner.Release) error {
	if rel == nil {
		return nil
	}
	mode := release
	if rel.Retain {
		mode = retain
	}
	return r.release(ctx, b, rel.ServiceAccounts, mode, rel.Identities...)
}

// report writes the plan's conditions (all its steps succeeded) and says
// when the binding is looked at again.
func (r *Reconciler) report(ctx context.Context, b *v1alpha1.PodIdentityBinding, in planner.Input, p planner.Plan) ctrl.Result {
	for _, c := range p.Conditions {
		bindingstatus.SetCondition(b, c.Type, c.Status, c.Reason, c.Message)
	}
	if p.RemoveFinalizer {
		return ctrl.Result{}
	}
	if p.Ready {
		b.Status.ObservedGeneration = b.Generation
		logf.FromContext(ctx).V(1).Info("binding in sync", "role", p.Current)
	} else {
		r.event(b, corev1.EventTypeWarning, vocab.EventReason(p.Reason), p.Message)
	}
	// gather resolved the binding's account: no second lookup.
	return r.resyncBinding(b, r.sweptIn(b, in.Account))
}

// bindError is a failed bind of the plan's ServiceAccount.
type bindError struct {
	sa  string
	err error
}

func (e bindError) Error() string {
	return fmt.Sprintf("binding ServiceAccount %s to the role: %v", e.sa, e.err)
}
func (e bindError) Unwrap() error { return e.err }

// applyAction makes the IAM writes of one planned action and records the
// result in status as soon as IAM has it, so a later failure never makes the
// binding forget a role.
func (r *Reconciler) applyAction(ctx context.Context, b *v1alpha1.PodIdentityBinding, a planner.Action, wasSynced bool, arns map[string]string,
	serviceAccount string, route map[string]acct) error {
	account, name := planner.SplitKey(a.Name)
	roles := route[account].roles
	log := logf.FromContext(ctx).WithValues("role", name, "account", account)
	current := planner.Key(b.Status.Account, b.Status.RoleName)
	switch a.Op {
	case planner.OpCreate:
		arn, id, err := roles.Create(ctx, a.Desired)
		if id != "" {
			recordOwned(b, a.Name, id)
			arns[a.Name] = arn
		}
		if err != nil {
			return err
		}
		if wasSynced && current == a.Name {
			driftCorrections.WithLabelValues(string(vocab.ChangeRoleDeleted), accounts.Label(account)).Inc()
			r.event(b, corev1.EventTypeWarning, vocab.EventDriftCorrected, "role "+roleRef(a.Name)+" was deleted outside the operator; recreated it")
		} else {
			r.event(b, corev1.EventTypeNormal, vocab.EventRoleCreated, "created IAM role "+arn+" for ServiceAccount "+serviceAccount)
		}
		log.Info("created role", "arn", arn)
	case planner.OpUpdate, planner.OpPark:
		if a.Diff.Empty() {
			return nil
		}
		log.V(1).Info("role differs", "changes", a.Diff.Changes())
		if err := roles.Apply(ctx, a.Desired, a.Diff); err != nil {
			return err
		}
		switch {
		case a.Op == planner.OpPark:
			r.event(b, corev1.EventTypeWarning, vocab.EventRoleParked, "removed every permission and trust from IAM role "+roleRef(a.Name)+" while the binding cannot hold its ServiceAccount: "+strings.Join(a.Diff.Changes(), "; "))
		case a.Narrowed:
			for _, k := range a.Diff.Kinds() {
				guardrailEnforcements.WithLabelValues(string(k), accounts.Label(account)).Inc()
			}
			r.event(b, corev1.EventTypeWarning, vocab.EventGuardrailEnforced, "narrowed IAM role "+roleRef(a.Name)+" to what the spec and guardrails allow: "+strings.Join(a.Diff.Changes(), "; "))
		case wasSynced && a.Name == current:
			for _, k := range a.Diff.Kinds() {
				driftCorrections.WithLabelValues(string(k), accounts.Label(account)).Inc()
			}
			r.event(b, corev1.EventTypeWarning, vocab.EventDriftCorrected, "corrected changes made outside the operator: "+strings.Join(a.Diff.Changes(), "; "))
		default:
			r.event(b, corev1.EventTypeNormal, vocab.EventRoleUpdated, "updated IAM role "+roleRef(a.Name)+": "+strings.Join(a.Diff.Changes(), "; "))
		}
		log.Info("updated role", "op", a.Op, "changes", a.Diff.Changes())
	case planner.OpDelete:
		if err := roles.Delete(ctx, name, a.ID); err != nil {
			return deleteError{name: name, err: err}
		}
		forgetOwned(b, a.Name)
		r.event(b, corev1.EventTypeNormal, vocab.EventRoleDeleted, "deleted IAM role "+roleRef(a.Name))
		log.Info("deleted role")
	case planner.OpRetain:
		if !a.Diff.Empty() {
			if err := roles.Apply(ctx, role.Desired{Name: name}, a.Diff); err != nil {
				return err
			}
		}
		forgetOwned(b, a.Name)
		r.event(b, corev1.EventTypeNormal, vocab.EventRoleRetained, "deletionPolicy is Retain: left IAM role "+roleRef(a.Name)+" in place, tagged "+role.TagRetained)
		log.Info("retained role")
	}
	return nil
}

// roleRef names a role key in events: the role's name, with its AWS account
// unless it is the operator's own.
func roleRef(key string) string {
	account, name := planner.SplitKey(key)
	if account == accounts.Home {
		return name
	}
	return name + " in AWS account " + account
}

// trustPending: the association's external ID is not the one the target
// role's trust was planned with; the next reconcile plans with it.
type trustPending struct{}

func (e trustPending) Error() string {
	return "EKS returned the pod identity association's external ID just now; the target role is made to trust the hop role with it next"
}

// bindingCRD is the PodIdentityBinding CRD's name.
const bindingCRD = "podidentitybindings." + "iam.podidentity.io"

// crdBeingDeleted reports whether the PodIdentityBinding CRD is being
// deleted: every binding then goes with it (Argo CD pruning the CRD, say),
// and no role may go with them (issue 18). Read live, and only while a
// binding is being deleted.
func (r *Reconciler) crdBeingDeleted(ctx context.Context) (bool, error) {
	crd := &metav1.PartialObjectMetadata{}
	// By GVK, not the apiextensions types: they would add megabytes to the binary.
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: bindingCRD}, crd); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return !crd.DeletionTimestamp.IsZero(), nil
}

// statusWriteFailed makes a refused status patch visible: a metric by
// reason and a Warning event (the event goes to the binding, not its
// status, so it is written even when the status cannot be).
func (r *Reconciler) statusWriteFailed(b *v1alpha1.PodIdentityBinding, err error) {
	reason := "Other"
	switch {
	case apierrors.IsInvalid(err):
		reason = "Invalid"
	case apierrors.IsConflict(err):
		reason = "Conflict"
	}
	statusWriteFailures.WithLabelValues(reason).Inc()
	r.event(b, corev1.EventTypeWarning, vocab.EventStatusWriteFailed, "the API server refused the binding's status ("+reason+"): "+err.Error()+
		"; the roles it records are still found by their ownership tags")
}

// retainedNow counts the actions that make a role a Retain record now (not
// those already tagged).
func retainedNow(actions []planner.Action) int {
	n := 0
	for _, a := range actions {
		if a.Op == planner.OpRetain && !a.Diff.Empty() {
			n++
		}
	}
	return n
}

// deleteError marks a failed role deletion, so the binding reports DeleteFailed.
type deleteError struct {
	name string
	err  error
}

func (e deleteError) Error() string { return "deleting IAM role " + e.name + ": " + e.err.Error() }
func (e deleteError) Unwrap() error { return e.err }

// recordOwned adds a role (by key) to status.ownedRoles, or updates its ID.
func recordOwned(b *v1alpha1.PodIdentityBinding, key, id string) {
	account, name := planner.SplitKey(key)
	for i := range b.Status.OwnedRoles {
		if o := &b.Status.OwnedRoles[i]; o.Name == name && o.Account == account {
			o.ID = id
			return
		}
	}
	b.Status.OwnedRoles = append(b.Status.OwnedRoles, v1alpha1.RoleReference{Name: name, Account: account, ID: id})
	slices.SortFunc(b.Status.OwnedRoles, func(x, y v1alpha1.RoleReference) int {
		return strings.Compare(planner.Key(x.Account, x.Name), planner.Key(y.Account, y.Name))
	})
}

func forgetOwned(b *v1alpha1.PodIdentityBinding, key string) {
	account, name := planner.SplitKey(key)
	b.Status.OwnedRoles = slices.DeleteFunc(b.Status.OwnedRoles, func(r v1alpha1.RoleReference) bool { return r.Name == name && r.Account == account })
	if len(b.Status.OwnedRoles) == 0 {
		b.Status.OwnedRoles = nil
	}
	if b.Status.RoleName == name && b.Status.Account == account {
		b.Status.Account, b.Status.RoleName, b.Status.RoleArn, b.Status.RoleID = "", "", "", ""
	}
}

// failure is the one place that turns an error into conditions and a
// requeue decision: terminal IAM and EKS errors and association conflicts
// are reported and retried at the sync period (no hot loop), everything
// else goes back to the rate-limited queue.
func (r *Reconciler) failure(ctx context.Context, b *v1alpha1.PodIdentityBinding, err error) (ctrl.Result, error) {
	deleting := !b.DeletionTimestamp.IsZero()
	var (
		de       deleteError
		eksErr   eksError
		be       bindError
		conflict associationConflict
	)
	var (
		accountConflict accounts.ConflictError
		unavailable     accounts.UnavailableError
		pending         trustPending
	)
	switch {
	case errors.As(err, &accountConflict):
		setFailed(b, v1alpha1.ReasonAccountConflict, accountConflict.Error(), v1alpha1.ConditionRoleSynced)
		r.event(b, corev1.EventTypeWarning, v1alpha1.ReasonAccountConflict, accountConflict.Error())
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	case errors.As(err, &unavailable):
		msg := unavailable.Error()
		if deleting {
			msg += "; the finalizer stays until the binding's roles there can be cleaned up"
		}
		setFailed(b, v1alpha1.ReasonAccountUnavailable, msg, v1alpha1.ConditionRoleSynced)
		r.event(b, corev1.EventTypeWarning, v1alpha1.ReasonAccountUnavailable, msg)
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	case errors.As(err, &pending):
		setFailed(b, v1alpha1.ReasonAssociationPending, pending.Error(), v1alpha1.ConditionRoleSynced)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case errors.As(err, &conflict):
		setFailed(b, v1alpha1.ReasonAssociationConflict, conflict.Error(), v1alpha1.ConditionServiceAccountSynced)
		r.event(b, corev1.EventTypeWarning, v1alpha1.ReasonAssociationConflict, conflict.Error())
		return r.resyncBinding(b, r.swept(ctx, b)), nil
	case errors.As(err, &eksErr):
		if awsiam.Classify(eksErr.err) == awsiam.Terminal {
			msg := "EKS rejected the request: " + eksErr.op + ": " + awsiam.Message(eksErr.err)
			setFailed(b, v1alpha1.ReasonEKSRequestRejected, msg, v1alpha1.ConditionServiceAccountSynced)
			r.event(b, corev1.EventTypeWarning, v1alpha1.ReasonEKSRequestRejected, msg)
			return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
		}
		setFailed(b, v1alpha1.ReasonEKSUnavailable, "EKS call failed, retrying: "+eksErr.Error(), v1alpha1.ConditionServiceAccountSynced)
		return ctrl.Result{}, err
	case errors.As(err, &be) && !deleting:
		setFailed(b, v1alpha1.ReasonServiceAccountError, be.Error(), v1alpha1.ConditionServiceAccountSynced)
		return ctrl.Result{}, err
	}
	msg := awsiam.Message(err)
	terminal := awsiam.Classify(err) == awsiam.Terminal
	if deleting || errors.As(err, &de) {
		if de.name != "" {
			msg = fmt.Sprintf("deleting IAM role %s: %s", de.name, msg)
		} else {
			msg = "cleaning up the binding's IAM roles and ServiceAccounts: " + msg
		}
		if deleting {
			msg += "; the finalizer stays until the role is deleted"
		}
		r.event(b, corev1.EventTypeWarning, vocab.EventDeleteFailed, msg)
		setFailed(b, v1alpha1.ReasonDeleteFailed, msg, v1alpha1.ConditionRoleSynced)
	} else if terminal {
		r.event(b, corev1.EventTypeWarning, vocab.EventIAMRequestRejected, msg)
		setFailed(b, v1alpha1.ReasonIAMRequestRejected, "IAM rejected the request: "+msg, v1alpha1.ConditionRoleSynced)
	} else {
		setFailed(b, v1alpha1.ReasonIAMUnavailable, "IAM call failed, retrying: "+err.Error(), v1alpha1.ConditionRoleSynced)
	}
	if terminal {
		logf.FromContext(ctx).Info("IAM rejected the request", "error", msg)
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	}
	return ctrl.Result{}, err
}

// resyncBinding is when a reconciled binding is looked at again without an
// event: never when the drift sweep watches its roles (it enqueues the
// binding when IAM differs), otherwise after the sync period. The sweep
// reads each account's roles, so a binding with roles in two accounts
// (moving, or its namespace unreachable) is re-read every period; so is a
// binding bound by an EKS pod identity association, because EKS lists
// associations without their role or session-tag setting (the sweep
// catches missing and replaced ones in its pages; a changed role needs a
// Describe per association).
func (r *Reconciler) resyncBinding(b *v1alpha1.PodIdentityBinding, swept bool) ctrl.Result {
	if swept && b.Status.Identity != v1alpha1.IdentityEKSPodIdentity {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: r.requeueAfter()}
}

func (r *Reconciler) requeueAfter() time.Duration {
	return wait.Jitter(r.SyncPeriod, 0.1)
}

func (r *Reconciler) event(b *v1alpha1.PodIdentityBinding, eventType string, reason vocab.EventReason, note string) {
	bindingstatus.RecordEvent(r.Recorder, b, eventType, reason, note)
}

func uniq(values ...string) []string {
	var out []string
	for _, v := range values {
		if v == "" {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

// SetupWithManager registers the controller, its watches and field indexes.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.budget = newBudget(r.NamespaceChangeQPS, r.NamespaceChangeBurst)
	if err := bindingindex.Register(ctx, mgr.GetCache()); err != nil {
		return err
	}

	b := ctrl.NewControllerManagedBy(mgr).
		// Changes without a token wait in their namespace's line (budget),
		// not in the queue.
		For(&v1alpha1.PodIdentityBinding{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionStarted()), r.budget.gate())).
		// A ServiceAccount change (annotation removed or edited, created,
		// deleted) re-reconciles every binding that names it.
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.bindingsForServiceAccount), builder.OnlyMetadata).
		// When a binding goes away, a newer binding of the same ServiceAccount may take over.
		Watches(&v1alpha1.PodIdentityBinding{}, handler.EnqueueRequestsFromMapFunc(r.siblingBindings),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		// A guardrail change can tighten or loosen any binding; its status
		// (written by the guardrail controller) changes nothing here.
		Watches(&v1alpha1.PodIdentityGuardrail{}, handler.EnqueueRequestsFromMapFunc(r.allBindings),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Which AWS account holds a namespace's roles (PodIdentityAccount).
		Watches(&v1alpha1.PodIdentityAccount{}, handler.EnqueueRequestsFromMapFunc(r.allBindings),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Namespace labels decide which guardrails and accounts select a namespace.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.bindingsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{}), builder.OnlyMetadata).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles, RateLimiter: failureRateLimiter(r.MaxBackoff),
			NewQueue: newFairQueue(mgr.GetLogger())}).
		Named("podidentitybinding")
	if r.Provider != nil {
		// The OIDC provider appearing, going or changing its audiences
		// changes whether any binding is Ready.
		b = b.WatchesRawSource(source.Channel(r.Provider.Changes(), handler.EnqueueRequestsFromMapFunc(r.allBindings)))
	}
	if r.budget != nil {
		// Bindings whose turn in their namespace's line came.
		b = b.WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			go r.budget.run(ctx, func(key types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: key}) })
			return nil
		}))
	}
	if r.Sweep != nil {
		// Bindings whose roles drifted in IAM.
		b = b.WatchesRawSource(source.Channel(r.Sweep.Events(), &handler.EnqueueRequestForObject{}))
		r.Sweep.informers = mgr.GetCache()
		if err := mgr.Add(r.Sweep); err != nil {
			return err
		}
	}
	return b.Complete(r)
}

// failureRateLimiter is controller-runtime's default (per-item exponential
// back-off from 5 ms, and an overall bucket) with the per-item back-off
// capped at maxBackoff instead of 1,000 s, and a bucket of 100/s, so that a
// thousand bindings that failed during an IAM outage are all retried within
// seconds of each other once IAM is back.
func failureRateLimiter(maxBackoff time.Duration) workqueue.TypedRateLimiter[reconcile.Request] {
	if maxBackoff <= 0 {
		maxBackoff = time.Minute
	}
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxBackoff),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(100), 200)},
	)
}

func (r *Reconciler) allBindings(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRequests(ctx)
}

func (r *Reconciler) bindingsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, client.InNamespace(o.GetName()))
}

func (r *Reconciler) listRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	return bindingindex.Requests(ctx, r.Client, nil, opts...)
}

func deletionStarted() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}

func (r *Reconciler) bindingsForServiceAccount(ctx context.Context, o client.Object) []reconcile.Request {
	return r.bindingsNaming(ctx, o.GetNamespace(), o.GetName(), "")
}

func (r *Reconciler) siblingBindings(ctx context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*v1alpha1.PodIdentityBinding)
	if !ok {
		return nil
	}
	return r.bindingsNaming(ctx, b.Namespace, b.Spec.ServiceAccountName, b.Name)
}

func (r *Reconciler) bindingsNaming(ctx context.Context, namespace, sa, except string) []reconcile.Request {
	return bindingindex.Requests(ctx, r.Client, func(b *v1alpha1.PodIdentityBinding) bool { return b.Name != except }, bindingindex.NamingOrHolding(namespace, sa)...)
}

// setFailed marks Ready and the given conditions False with one reason.
func setFailed(b *v1alpha1.PodIdentityBinding, reason, msg string, condTypes ...string) {
	for _, t := range append(condTypes, v1alpha1.ConditionReady) {
		bindingstatus.SetCondition(b, t, metav1.ConditionFalse, reason, msg)
	}
}

func isTrueForGeneration(b *v1alpha1.PodIdentityBinding, condType string) bool {
	c := meta.FindStatusCondition(b.Status.Conditions, condType)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == b.Generation
}

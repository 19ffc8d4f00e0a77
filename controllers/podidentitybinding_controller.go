// Package controllers holds the PodIdentityBinding reconciler.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
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

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Finalizer keeps a binding until its IAM role and ServiceAccount annotation
// are cleaned up.
const Finalizer = "iam.podidentity.io/finalizer"

// Index of bindings by spec.serviceAccountName and status.serviceAccountName.
const (
	indexSpecServiceAccount   = "spec.serviceAccountName"
	indexStatusServiceAccount = "status.serviceAccountName"
)

// Event reasons.
const (
	EventRoleCreated            = "RoleCreated"
	EventRoleUpdated            = "RoleUpdated"
	EventRoleDeleted            = "RoleDeleted"
	EventRoleRetained           = "RoleRetained"
	EventDriftCorrected         = "DriftCorrected"
	EventRoleConflict           = "RoleConflict"
	EventServiceAccountConflict = "ServiceAccountConflict"
	EventServiceAccountUpdated  = "ServiceAccountUpdated"
	EventIAMRequestRejected     = "IAMRequestRejected"
	EventDeleteFailed           = "DeleteFailed"
	EventInvalidSpec            = "InvalidSpec"
	EventGuardrailViolation     = "GuardrailViolation"
)

// Reconciler converges a PodIdentityBinding: the IAM role, its trust and
// permission policies, and the ServiceAccount annotation.
type Reconciler struct {
	client.Client
	// APIReader reads ServiceAccounts live where the cache could be stale.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Roles     role.Client
	Config    role.Config
	// Guard checks specs, quotas and guardrails before anything reaches IAM.
	Guard      guard.Checker
	Guardrails GuardrailSource
	// SyncPeriod is how often an in-sync binding is checked for drift (jittered by up to 10%).
	SyncPeriod              time.Duration
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentitybindings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:urls=/.well-known/openid-configuration,verbs=get

// Reconcile fetches the binding, defers one status patch and branches into
// reconcileNormal or reconcileDelete.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	b := &v1alpha1.PodIdentityBinding{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := logf.FromContext(ctx).WithValues("serviceAccount", b.Spec.ServiceAccountName, "generation", b.Generation)
	ctx = logf.IntoContext(ctx, log)

	before := b.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, b.Status) {
			return
		}
		if err := r.Status().Patch(ctx, b, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !b.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, b)
	}
	if !controllerutil.ContainsFinalizer(b, Finalizer) {
		controllerutil.AddFinalizer(b, Finalizer)
		if err := r.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		before = b.DeepCopy()
	}
	return r.reconcileNormal(ctx, b)
}

func (r *Reconciler) reconcileNormal(ctx context.Context, b *v1alpha1.PodIdentityBinding) (ctrl.Result, error) {
	log := logf.FromContext(ctx)

	rules, err := r.Guardrails.RulesFor(ctx, b.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	check := r.Guard.Check(b, rules)
	if len(check.Invalid) > 0 {
		msg := "invalid spec: " + guard.Message(check.Invalid)
		r.event(b, corev1.EventTypeWarning, EventInvalidSpec, msg)
		setFailed(b, v1alpha1.ReasonInvalidSpec, msg, v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced)
		// The spec cannot be applied, but the role it left behind must still
		// obey the guardrails.
		if removed, err := r.narrowExistingRole(ctx, b, rules); err != nil {
			return r.iamFailure(ctx, b, err, v1alpha1.ConditionRoleSynced)
		} else if removed != "" {
			setFailed(b, v1alpha1.ReasonInvalidSpec, msg+". Removed from the role because it violates guardrails: "+removed,
				v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced)
		}
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	}
	// Fail closed: a binding that breaks a guardrail never widens a role. A
	// new one gets nothing in IAM; an existing role loses what violates.
	effective := b
	if len(check.Violations) > 0 {
		msg := "violates guardrails: " + guard.Message(check.Violations)
		if b.Status.RoleName == "" {
			r.event(b, corev1.EventTypeWarning, EventGuardrailViolation, msg)
			setFailed(b, v1alpha1.ReasonGuardrailViolation, msg, v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced)
			return ctrl.Result{}, nil
		}
		effective = check.Narrow(b)
	}

	holder, err := r.serviceAccountHolder(ctx, b)
	if err != nil {
		return ctrl.Result{}, err
	}
	if holder != nil {
		msg := fmt.Sprintf("ServiceAccount %s is already bound by PodIdentityBinding %s (the older binding wins); point this binding at another ServiceAccount or delete one of them",
			b.Spec.ServiceAccountName, holder.Name)
		r.event(b, corev1.EventTypeWarning, EventServiceAccountConflict, msg)
		setFailed(b, v1alpha1.ReasonServiceAccountConflict, msg, v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced)
		// Let go of a ServiceAccount this binding annotated before the conflict.
		if err := r.releaseOldServiceAccounts(ctx, b, ""); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, nil
	}

	desired := role.DesiredFor(r.Config, effective)
	if check.Boundary != "" {
		desired.Boundary = check.Boundary
	}
	arn, roleID, err := r.syncRole(ctx, b, desired)
	if err != nil {
		return r.iamFailure(ctx, b, err, v1alpha1.ConditionRoleSynced)
	}
	if arn == "" { // RoleConflict, already reported
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	}
	b.Status.RoleArn = arn
	b.Status.RoleName = desired.Name
	b.Status.RoleID = roleID
	setCondition(b, v1alpha1.ConditionRoleSynced, metav1.ConditionTrue, v1alpha1.ReasonSynced, "IAM role "+desired.Name+" matches the binding")

	if err := r.syncServiceAccount(ctx, b, arn); err != nil {
		msg := fmt.Sprintf("annotating ServiceAccount %s: %v", b.Spec.ServiceAccountName, err)
		setFailed(b, v1alpha1.ReasonServiceAccountError, msg, v1alpha1.ConditionServiceAccountSynced)
		return ctrl.Result{}, err
	}
	if err := r.releaseOldServiceAccounts(ctx, b, b.Spec.ServiceAccountName); err != nil {
		return ctrl.Result{}, err
	}
	b.Status.ServiceAccountName = b.Spec.ServiceAccountName
	setCondition(b, v1alpha1.ConditionServiceAccountSynced, metav1.ConditionTrue, v1alpha1.ReasonSynced,
		"ServiceAccount "+b.Spec.ServiceAccountName+" is annotated with the role ARN")
	if len(check.Violations) > 0 {
		msg := "violates guardrails: " + guard.Message(check.Violations) + ". Removed from the role: " + check.Removed(b)
		r.event(b, corev1.EventTypeWarning, EventGuardrailViolation, msg)
		setFailed(b, v1alpha1.ReasonGuardrailViolation, msg, v1alpha1.ConditionRoleSynced)
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	}
	setCondition(b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable,
		"pods using ServiceAccount "+b.Spec.ServiceAccountName+" can assume "+arn)
	b.Status.ObservedGeneration = b.Generation
	log.V(1).Info("binding in sync", "role", desired.Name)
	return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
}

// syncRole creates or updates the role and returns its ARN and unique ID. It
// returns "" and no error when the role name is taken by a role this binding
// does not own.
func (r *Reconciler) syncRole(ctx context.Context, b *v1alpha1.PodIdentityBinding, d role.Desired) (string, string, error) {
	log := logf.FromContext(ctx).WithValues("role", d.Name)
	// Spec already applied once for this generation: any difference is drift.
	wasSynced := isTrueForGeneration(b, v1alpha1.ConditionRoleSynced)

	obs, err := r.Roles.Observe(ctx, d.Name)
	if err != nil {
		return "", "", err
	}
	if obs == nil {
		arn, id, err := r.Roles.Create(ctx, d)
		if err != nil {
			return "", "", err
		}
		if wasSynced && b.Status.RoleName == d.Name {
			driftCorrections.WithLabelValues("RoleDeleted").Inc()
			r.event(b, corev1.EventTypeWarning, EventDriftCorrected, "role "+d.Name+" was deleted outside the operator; recreated it")
		} else {
			r.event(b, corev1.EventTypeNormal, EventRoleCreated, "created IAM role "+arn)
		}
		log.Info("created role", "arn", arn)
		return arn, id, r.cleanupOldRole(ctx, b, d.Name)
	}
	if !role.OwnedBy(obs, r.knownRoleID(b, d.Name), r.Config, b.Namespace, b.Name) {
		msg := fmt.Sprintf("IAM role %s exists but is not tagged as owned by this binding (%s=%s, %s=%s, %s=%s); the operator will not modify it. Set spec.roleName to another name or remove the other role",
			d.Name, role.TagCluster, r.Config.ClusterName, role.TagNamespace, b.Namespace, role.TagBinding, b.Name)
		r.event(b, corev1.EventTypeWarning, EventRoleConflict, msg)
		setFailed(b, v1alpha1.ReasonRoleConflict, msg, v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced)
		return "", "", nil
	}
	plan := role.Diff(d, *obs)
	if !plan.Empty() {
		log.V(1).Info("role differs", "changes", plan.Changes())
		if err := r.Roles.Apply(ctx, d, plan); err != nil {
			return "", "", err
		}
		if wasSynced {
			for _, k := range plan.Kinds() {
				driftCorrections.WithLabelValues(k).Inc()
			}
			r.event(b, corev1.EventTypeWarning, EventDriftCorrected, "corrected changes made outside the operator: "+strings.Join(plan.Changes(), "; "))
			log.Info("corrected drift", "changes", plan.Changes())
		} else {
			r.event(b, corev1.EventTypeNormal, EventRoleUpdated, "updated IAM role: "+strings.Join(plan.Changes(), "; "))
			log.Info("updated role", "changes", plan.Changes())
		}
	}
	return obs.ARN, obs.ID, r.cleanupOldRole(ctx, b, d.Name)
}

// knownRoleID is the unique ID the binding recorded for a role name, if any.
func (r *Reconciler) knownRoleID(b *v1alpha1.PodIdentityBinding, name string) string {
	if b.Status.RoleName == name {
		return b.Status.RoleID
	}
	return ""
}

// narrowExistingRole checks the permissions the binding's role has now
// against the guardrails and removes what violates them. It is used when the
// spec itself cannot be applied, so access still never stays wider than the
// guardrails allow. It returns what it removed.
func (r *Reconciler) narrowExistingRole(ctx context.Context, b *v1alpha1.PodIdentityBinding, rules []guard.Rule) (string, error) {
	if b.Status.RoleName == "" {
		return "", nil
	}
	obs, err := r.Roles.Observe(ctx, b.Status.RoleName)
	if err != nil || obs == nil || !role.OwnedBy(obs, b.Status.RoleID, r.Config, b.Namespace, b.Name) {
		return "", err
	}
	current := role.CurrentBinding(b, obs)
	check := r.Guard.Check(current, rules)
	if len(check.Invalid) > 0 || len(check.Violations) == 0 {
		return "", nil
	}
	narrowed := check.Narrow(current)
	d := role.DesiredFor(r.Config, narrowed)
	plan := role.Plan{Detach: slices.Sorted(maps.Keys(check.DropManaged))}
	if d.Permissions != nil {
		plan.PutPermissions = true
	} else {
		plan.DeleteInline = []string{role.InlinePolicyName}
	}
	if check.SessionCap != nil {
		d.Description = obs.Description
		plan.UpdateRole = true
	}
	if err := r.Roles.Apply(ctx, d, plan); err != nil {
		return "", err
	}
	removed := check.Removed(current)
	r.event(b, corev1.EventTypeWarning, EventGuardrailViolation, "removed from the role because it violates guardrails: "+removed)
	return removed, nil
}

// cleanupOldRole deletes the role the binding used before its role name
// changed (spec.roleName or operator prefix), following the deletion policy.
func (r *Reconciler) cleanupOldRole(ctx context.Context, b *v1alpha1.PodIdentityBinding, current string) error {
	old := b.Status.RoleName
	if old == "" || old == current || b.Spec.DeletionPolicy == v1alpha1.DeletionPolicyRetain {
		return nil
	}
	return r.deleteOwnedRole(ctx, b, old)
}

// deleteOwnedRole deletes a role if it exists and carries this binding's tags.
func (r *Reconciler) deleteOwnedRole(ctx context.Context, b *v1alpha1.PodIdentityBinding, name string) error {
	obs, err := r.Roles.Get(ctx, name)
	if err != nil || obs == nil {
		return err
	}
	if !role.OwnedBy(obs, r.knownRoleID(b, name), r.Config, b.Namespace, b.Name) {
		logf.FromContext(ctx).Info("not deleting role: not owned by this binding", "role", name)
		return nil
	}
	if err := r.Roles.Delete(ctx, name); err != nil {
		return err
	}
	r.event(b, corev1.EventTypeNormal, EventRoleDeleted, "deleted IAM role "+name)
	logf.FromContext(ctx).Info("deleted role", "role", name)
	return nil
}

func (r *Reconciler) reconcileDelete(ctx context.Context, b *v1alpha1.PodIdentityBinding) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(b, Finalizer) {
		return ctrl.Result{}, nil
	}
	setCondition(b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleting, "cleaning up the IAM role and ServiceAccount annotation")

	if b.Spec.DeletionPolicy == v1alpha1.DeletionPolicyRetain {
		if b.Status.RoleName != "" {
			r.event(b, corev1.EventTypeNormal, EventRoleRetained, "deletionPolicy is Retain: left IAM role "+b.Status.RoleName+" in place")
		}
	} else {
		for _, name := range uniq(b.Status.RoleName, role.Name(r.Config, b)) {
			if err := r.deleteOwnedRole(ctx, b, name); err != nil {
				msg := fmt.Sprintf("deleting IAM role %s: %s; the finalizer stays until the role is deleted", name, awsiam.Message(err))
				r.event(b, corev1.EventTypeWarning, EventDeleteFailed, msg)
				setCondition(b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleteFailed, msg)
				setCondition(b, v1alpha1.ConditionRoleSynced, metav1.ConditionFalse, v1alpha1.ReasonDeleteFailed, msg)
				if awsiam.Classify(err) == awsiam.Terminal {
					return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
				}
				return ctrl.Result{}, err
			}
		}
	}

	mode := release
	if b.Spec.DeletionPolicy == v1alpha1.DeletionPolicyRetain {
		mode = retain
	}
	if err := r.releaseServiceAccounts(ctx, b, uniq(b.Status.ServiceAccountName, b.Spec.ServiceAccountName), mode); err != nil {
		return ctrl.Result{}, err
	}

	before := b.DeepCopy()
	controllerutil.RemoveFinalizer(b, Finalizer)
	if err := r.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// iamFailure turns an IAM error into conditions and a requeue decision:
// terminal errors are reported and retried at the sync period (no hot loop),
// retryable ones go back to the rate-limited queue.
func (r *Reconciler) iamFailure(ctx context.Context, b *v1alpha1.PodIdentityBinding, err error, condType string) (ctrl.Result, error) {
	msg := awsiam.Message(err)
	if awsiam.Classify(err) == awsiam.Terminal {
		r.event(b, corev1.EventTypeWarning, EventIAMRequestRejected, msg)
		setFailed(b, v1alpha1.ReasonIAMRequestRejected, "IAM rejected the request: "+msg, condType)
		logf.FromContext(ctx).Info("IAM rejected the request", "error", msg)
		return ctrl.Result{RequeueAfter: r.requeueAfter()}, nil
	}
	setFailed(b, v1alpha1.ReasonIAMUnavailable, "IAM call failed, retrying: "+err.Error(), condType)
	return ctrl.Result{}, err
}

func (r *Reconciler) requeueAfter() time.Duration {
	return wait.Jitter(r.SyncPeriod, 0.1)
}

func (r *Reconciler) event(b *v1alpha1.PodIdentityBinding, eventType, reason, note string) {
	if r.Recorder == nil {
		return
	}
	if len(note) > 1000 {
		note = note[:1000]
	}
	r.Recorder.Eventf(b, nil, eventType, reason, "Reconcile", "%s", note)
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
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.PodIdentityBinding{}, indexSpecServiceAccount, func(o client.Object) []string {
		return []string{o.(*v1alpha1.PodIdentityBinding).Spec.ServiceAccountName}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.PodIdentityBinding{}, indexStatusServiceAccount, func(o client.Object) []string {
		if sa := o.(*v1alpha1.PodIdentityBinding).Status.ServiceAccountName; sa != "" {
			return []string{sa}
		}
		return nil
	}); err != nil {
		return err
	}

	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PodIdentityBinding{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionStarted()))).
		// A ServiceAccount change (annotation removed or edited, created,
		// deleted) re-reconciles every binding that names it.
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.bindingsForServiceAccount)).
		// When a binding goes away, a newer binding of the same ServiceAccount may take over.
		Watches(&v1alpha1.PodIdentityBinding{}, handler.EnqueueRequestsFromMapFunc(r.siblingBindings),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		// A guardrail change can tighten or loosen any binding.
		Watches(&v1alpha1.PodIdentityGuardrail{}, handler.EnqueueRequestsFromMapFunc(r.allBindings)).
		// Namespace labels decide which guardrails select a namespace.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.bindingsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("podidentitybinding").
		Complete(r)
}

func (r *Reconciler) allBindings(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRequests(ctx)
}

func (r *Reconciler) bindingsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, client.InNamespace(o.GetName()))
}

func (r *Reconciler) listRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	list := &v1alpha1.PodIdentityBindingList{}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing bindings")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
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
	seen := map[string]bool{}
	var reqs []reconcile.Request
	for _, field := range []string{indexSpecServiceAccount, indexStatusServiceAccount} {
		list := &v1alpha1.PodIdentityBindingList{}
		if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{field: sa}); err != nil {
			logf.FromContext(ctx).Error(err, "listing bindings for ServiceAccount", "serviceAccount", sa)
			continue
		}
		for _, b := range list.Items {
			if b.Name == except || seen[b.Name] {
				continue
			}
			seen[b.Name] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&b)})
		}
	}
	return reqs
}

// setCondition sets a condition for the binding's current generation; the
// transition time changes only when the status does.
func setCondition(b *v1alpha1.PodIdentityBinding, condType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: msg, ObservedGeneration: b.Generation,
	})
}

// setFailed marks Ready and the given conditions False with one reason.
func setFailed(b *v1alpha1.PodIdentityBinding, reason, msg string, condTypes ...string) {
	for _, t := range append(condTypes, v1alpha1.ConditionReady) {
		setCondition(b, t, metav1.ConditionFalse, reason, msg)
	}
}

func isTrueForGeneration(b *v1alpha1.PodIdentityBinding, condType string) bool {
	c := meta.FindStatusCondition(b.Status.Conditions, condType)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == b.Generation
}

// Package pods reports, per binding, the running pods of its ServiceAccount
// that lack the current role's credentials (status.pods, PodsCurrent) and,
// with podRestartPolicy Rollout, restarts the workloads that own them.
package pods

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/internal/bindingindex"
	"github.com/podidentity/podidentity-operator/internal/bindingstatus"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

const (
	indexPodServiceAccount = "spec.serviceAccountName"
	// stalePodsNamed is how many stale pods the condition names.
	stalePodsNamed = 5
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Reconciler reports, for each binding, the running pods of its
// ServiceAccount that do not carry the current role's credentials (started
// before the annotation or before the role changed, or missed by a webhook):
// status.pods and the PodsCurrent condition. With podRestartPolicy Rollout it
// restarts the workloads that own them. It reads only the cluster's caches
// (pods trimmed by TrimPod) and never calls IAM, so pod churn costs no IAM
// request; it is separate from the binding Reconciler for that reason.
type Reconciler struct {
	client.Client
	// APIReader reads the workloads to restart (they are not cached).
	APIReader  client.Reader
	Recorder   events.EventRecorder
	Guardrails guardrail.Source
	// EnableRestarts is the operator's --enable-pod-restarts.
	EnableRestarts bool
	// MinRestartInterval is the least time between two restarts of one
	// workload (--pod-restart-min-interval).
	MinRestartInterval time.Duration
	Now                func() time.Time
	// Mechanism is the binding's identity mechanism (role.Config.Mechanism),
	// which says whether a pod can obtain the role's credentials.
	Mechanism func(*v1alpha1.PodIdentityBinding) identity.Mechanism
}

// Reconcile counts the binding's pods, restarts workloads when asked, and
// patches status.pods and PodsCurrent.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &v1alpha1.PodIdentityBinding{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !b.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := b.DeepCopy()
	sa, arn := b.Status.ServiceAccountName, b.Status.RoleArn
	if sa == "" || arn == "" {
		// No ServiceAccount carries a role of this binding: nothing to count.
		b.Status.Pods = nil
		meta.RemoveStatusCondition(&b.Status.Conditions, v1alpha1.ConditionPodsCurrent)
		return ctrl.Result{}, r.patchStatus(ctx, before, b)
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(b.Namespace), client.MatchingFields{indexPodServiceAccount: sa}); err != nil {
		return ctrl.Result{}, err
	}
	current, stale := classifyPods(pods.Items, arn, r.Mechanism(b))
	b.Status.Pods = &v1alpha1.PodCounts{Current: int32(current), Stale: int32(len(stale))}
	if len(stale) == 0 {
		msg := "no running pods use ServiceAccount " + sa
		if current > 0 {
			msg = fmt.Sprintf("all %d running pods of ServiceAccount %s carry the credentials of %s", current, sa, arn)
		}
		bindingstatus.SetCondition(b, v1alpha1.ConditionPodsCurrent, metav1.ConditionTrue, v1alpha1.ReasonPodsCurrent, msg)
		return ctrl.Result{}, r.patchStatus(ctx, before, b)
	}

	msg := fmt.Sprintf("%d of %d running pods of ServiceAccount %s run without the credentials of %s (started before the annotation or before the role changed, or missed by a webhook): %s.",
		len(stale), current+len(stale), sa, arn, podNames(stale))
	if before.Status.Pods == nil || before.Status.Pods.Stale == 0 {
		r.event(b, corev1.EventTypeWarning, vocab.EventStalePods, msg)
	}
	outcome, err := r.remediate(ctx, b, stale, arn)
	bindingstatus.SetCondition(b, v1alpha1.ConditionPodsCurrent, metav1.ConditionFalse, v1alpha1.ReasonStalePods, msg+" "+outcome)
	if perr := r.patchStatus(ctx, before, b); perr != nil {
		return ctrl.Result{}, perr
	}
	var rl restartLater
	if errors.As(err, &rl) {
		return ctrl.Result{RequeueAfter: rl.wait}, nil
	}
	return ctrl.Result{}, err
}

// classifyPods counts running pods that carry arn's credentials and returns
// those that do not. Finished and terminating pods are not counted.
func classifyPods(pods []corev1.Pod, arn string, m identity.Mechanism) (current int, stale []*corev1.Pod) {
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || !p.DeletionTimestamp.IsZero() {
			continue
		}
		if m.PodCurrent(p, arn) {
			current++
		} else {
			stale = append(stale, p)
		}
	}
	slices.SortFunc(stale, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return current, stale
}

func podNames(pods []*corev1.Pod) string {
	var names []string
	for i, p := range pods {
		if i == stalePodsNamed {
			names = append(names, fmt.Sprintf("and %d more", len(pods)-stalePodsNamed))
			break
		}
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// remediate restarts the workloads owning stale pods when the binding asks
// for it and the operator and guardrails allow it. It returns what the
// condition says about it.
func (r *Reconciler) remediate(ctx context.Context, b *v1alpha1.PodIdentityBinding, stale []*corev1.Pod, arn string) (string, error) {
	if b.Spec.PodRestartPolicy != v1alpha1.PodRestartPolicyRollout {
		return "Restart them, or set spec.podRestartPolicy: Rollout.", nil
	}
	if !r.EnableRestarts {
		return "podRestartPolicy is Rollout, but the operator runs without --enable-pod-restarts: restart them yourself.", nil
	}
	rules, err := r.Guardrails.RulesFor(ctx, b.Namespace)
	if err != nil {
		return "", err
	}
	for _, rule := range rules {
		if rule.ForbidPodRestarts {
			return "Guardrail " + rule.Name + " forbids restarts in this namespace: restart them yourself.", nil
		}
	}
	workloads, bare, err := r.owners(ctx, stale, b.Status.ServiceAccountName)
	if err != nil {
		return "", err
	}
	var restarted, done, later []string
	var retry error
	for _, w := range workloads {
		did, err := r.restart(ctx, w, arn)
		var rl restartLater
		if errors.As(err, &rl) {
			later = append(later, w.describe())
			retry = rl
			continue
		}
		if err != nil {
			return "", fmt.Errorf("restarting %s: %w", w.describe(), err)
		}
		if did {
			restarted = append(restarted, w.describe())
			r.event(b, corev1.EventTypeNormal, vocab.EventRolloutRestarted, "restarted "+w.describe()+" so its pods get the credentials of "+arn)
		} else {
			done = append(done, w.describe())
		}
	}
	var parts []string
	if len(restarted) > 0 {
		parts = append(parts, "Restarted "+strings.Join(restarted, ", ")+".")
	}
	if len(done) > 0 {
		parts = append(parts, "Already restarted for this role: "+strings.Join(done, ", ")+".")
	}
	if len(later) > 0 {
		parts = append(parts, fmt.Sprintf("Restarted less than %s ago, restarted again later: %s.", r.MinRestartInterval, strings.Join(later, ", ")))
	}
	if bare > 0 {
		parts = append(parts, fmt.Sprintf("%d pods have no Deployment, StatefulSet or DaemonSet running as ServiceAccount %s and are not restarted.", bare, b.Status.ServiceAccountName))
	}
	return strings.Join(parts, " "), retry
}

// restartLater: the workload was restarted less than MinRestartInterval
// ago; its binding is looked at again after wait.
type restartLater struct{ wait time.Duration }

func (e restartLater) Error() string { return "restarted less than the minimum interval ago" }

// workload is a Deployment, StatefulSet or DaemonSet.
type workload struct {
	obj  client.Object
	kind string
}

func (w workload) describe() string { return w.kind + " " + w.obj.GetName() }

// template returns the workload's pod template.
func (w workload) template() *corev1.PodTemplateSpec {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	}
	return nil
}

// owners finds the Deployments (through their ReplicaSets), StatefulSets and
// DaemonSets that control the pods, and counts pods with none of those. An
// owner reference is followed only to the object with its UID (a pod can
// name any object as its owner), and only to a workload whose pod template
// runs as the binding's ServiceAccount: a tenant who can create pods cannot
// make the operator restart a workload that is not the binding's (issue 17,
// defect 9).
func (r *Reconciler) owners(ctx context.Context, pods []*corev1.Pod, sa string) ([]workload, int, error) {
	seen := map[types.UID]bool{}
	deployments := map[types.UID]*metav1.OwnerReference{} // ReplicaSet UID -> its Deployment (nil none), read once
	var out []workload
	bare := 0
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref != nil && ref.APIVersion == "apps/v1" && ref.Kind == "ReplicaSet" {
			dref, known := deployments[ref.UID]
			if !known {
				rs := &appsv1.ReplicaSet{}
				err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, rs)
				if err != nil && !apierrors.IsNotFound(err) {
					return nil, 0, err
				}
				if err == nil && rs.UID == ref.UID {
					if c := metav1.GetControllerOf(rs); c != nil && c.APIVersion == "apps/v1" && c.Kind == "Deployment" {
						dref = c
					}
				}
				deployments[ref.UID] = dref
			}
			ref = dref
		} else if ref != nil && (ref.APIVersion != "apps/v1" || ref.Kind == "Deployment") {
			ref = nil // a pod is never controlled by a Deployment directly
		}
		var obj client.Object
		switch {
		case ref == nil:
		case ref.Kind == "Deployment":
			obj = &appsv1.Deployment{}
		case ref.Kind == "StatefulSet":
			obj = &appsv1.StatefulSet{}
		case ref.Kind == "DaemonSet":
			obj = &appsv1.DaemonSet{}
		}
		if obj == nil {
			bare++
			continue
		}
		if seen[ref.UID] {
			continue
		}
		seen[ref.UID] = true
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				bare++
				continue
			}
			return nil, 0, err
		}
		w := workload{obj: obj, kind: ref.Kind}
		if obj.GetUID() != ref.UID || templateServiceAccount(w.template()) != sa {
			bare++ // not the owner the pod claims, or not running as the binding's ServiceAccount
			continue
		}
		out = append(out, w)
	}
	return out, bare, nil
}

// templateServiceAccount is the ServiceAccount a pod template runs as.
func templateServiceAccount(t *corev1.PodTemplateSpec) string {
	if t.Spec.ServiceAccountName == "" {
		return "default"
	}
	return t.Spec.ServiceAccountName
}

// restart sets the pod template annotations `kubectl rollout restart` sets,
// unless the workload was already restarted for this role ARN.
func (r *Reconciler) restart(ctx context.Context, w workload, arn string) (bool, error) {
	tmpl := w.template()
	if tmpl.Annotations[vocab.AnnotationRestartedForRole] == arn {
		return false, nil
	}
	// At most one restart per workload per MinRestartInterval, however
	// often its role changes.
	if at, err := time.Parse(time.RFC3339, tmpl.Annotations[vocab.AnnotationRestartedAt]); err == nil &&
		tmpl.Annotations[vocab.AnnotationRestartedForRole] != "" {
		if wait := at.Add(r.MinRestartInterval).Sub(r.now()); wait > 0 {
			return false, restartLater{wait: wait}
		}
	}
	before := w.obj.DeepCopyObject().(client.Object)
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[vocab.AnnotationRestartedAt] = r.now().UTC().Format(time.RFC3339)
	tmpl.Annotations[vocab.AnnotationRestartedForRole] = arn
	return true, r.Patch(ctx, w.obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// patchStatus applies status.pods and PodsCurrent, this controller's part of
// status, when they changed (the binding Reconciler applies the rest).
func (r *Reconciler) patchStatus(ctx context.Context, before, b *v1alpha1.PodIdentityBinding) error {
	part := bindingstatus.PodsPart(b.Status)
	if equality.Semantic.DeepEqual(bindingstatus.PodsPart(before.Status), part) {
		return nil
	}
	return client.IgnoreNotFound(bindingstatus.Apply(ctx, r.Status(), b, vocab.StatusManagerPods, part))
}

func (r *Reconciler) event(b *v1alpha1.PodIdentityBinding, eventType string, reason vocab.EventReason, note string) {
	bindingstatus.RecordEvent(r.Recorder, b, eventType, reason, note)
}

// SetupWithManager indexes pods by ServiceAccount and watches them. Call it
// after Reconciler.SetupWithManager, which indexes bindings by the
// ServiceAccount in their status.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, indexPodServiceAccount, func(o client.Object) []string {
		return []string{o.(*corev1.Pod).Spec.ServiceAccountName}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Status changes matter here: the role ARN and ServiceAccount come
		// from the binding's status.
		For(&v1alpha1.PodIdentityBinding{}, builder.WithPredicates(podsMatter())).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.bindingsForPod), builder.WithPredicates(podChanged())).
		// A guardrail can forbid restarts (its spec; its status, the counts
		// the guardrail controller keeps, changes nothing here).
		Watches(&v1alpha1.PodIdentityGuardrail{}, handler.EnqueueRequestsFromMapFunc(r.allBindings),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("podidentitybinding-pods").
		Complete(r)
}

func (r *Reconciler) bindingsForPod(ctx context.Context, o client.Object) []reconcile.Request {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return nil
	}
	sa := p.Spec.ServiceAccountName
	return bindingindex.Requests(ctx, r.Client, func(b *v1alpha1.PodIdentityBinding) bool { return b.Status.ServiceAccountName == sa },
		bindingindex.NamingOrHolding(p.Namespace, sa)...)
}

func (r *Reconciler) allBindings(ctx context.Context, _ client.Object) []reconcile.Request {
	return bindingindex.Requests(ctx, r.Client, nil)
}

// podsMatter passes the events of bindings that have pods to count (a role
// ARN and ServiceAccount in status) or counts to clear. A binding the
// binding controller has not handled yet, such as each of the bindings a
// tenant creates and deletes in a loop, costs this controller nothing; so
// does a deletion (Reconcile has nothing to do for a binding that is gone).
func podsMatter() predicate.Funcs {
	matter := func(o client.Object) bool {
		b, ok := o.(*v1alpha1.PodIdentityBinding)
		return !ok || (b.Status.ServiceAccountName != "" && b.Status.RoleArn != "") || b.Status.Pods != nil ||
			meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionPodsCurrent) != nil
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return matter(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return matter(e.ObjectOld) || matter(e.ObjectNew) },
		DeleteFunc: func(event.DeleteEvent) bool { return false },
	}
}

// podChanged passes pod updates that change what Reconciler reads (the
// trimmed object apart from its resourceVersion): kubelet status updates of
// running pods are filtered out.
func podChanged() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*corev1.Pod)
		n, okNew := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okNew {
			return true
		}
		// Compared in place (this runs for every pod update in the cluster):
		// what TrimPod keeps, resourceVersion aside.
		return !o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
			!equality.Semantic.DeepEqual(o.OwnerReferences, n.OwnerReferences) ||
			!equality.Semantic.DeepEqual(o.Spec, n.Spec) || o.Status.Phase != n.Status.Phase
	}}
}

package binding

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// driftCorrections counts corrections of changes made outside the operator,
// by kind (TrustPolicy, InlinePolicy, ExtraInlinePolicy, ManagedPolicies,
// PermissionsBoundary, MaxSessionDuration, Description, Tags, RoleDeleted).
var driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_drift_corrections_total",
	Help: "Changes made outside the operator that it corrected, by kind and AWS account (operator: the operator's own).",
}, []string{"kind", "account"})

// guardrailEnforcements counts permissions removed from roles because a
// guardrail forbids them (a guardrail tightened, or an invalid spec kept
// only what is allowed), by kind of change. Kept apart from drift: nobody
// changed the role behind the operator's back.
var guardrailEnforcements = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_guardrail_enforcements_total",
	Help: "Changes the operator made to roles because guardrails forbid what they allowed, by kind and AWS account (operator: the operator's own).",
}, []string{"kind", "account"})

// statusWriteFailures counts status patches of bindings the API server
// refused, by reason (Invalid, Conflict, Other). What a reconcile recorded in
// a refused status is lost until the next one; IAM's ownership tags keep the
// roles it created findable (decision 59).
var statusWriteFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_status_write_failures_total",
	Help: "Status patches of PodIdentityBindings the API server refused, by reason.",
}, []string{"reason"})

// orphansRetired counts roles the drift sweep retired because the binding
// their ownership tags name no longer exists, by action (Retained, Parked).
var orphansRetired = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_orphan_roles_retired_total",
	Help: "Roles tagged for a PodIdentityBinding that no longer exists, retired by the drift sweep, by action and AWS account (operator: the operator's own).",
}, []string{"action", "account"})

// rolesKeptOnCRDDeletion counts roles kept (tagged retained) because their
// binding was deleted with the PodIdentityBinding CRD.
var rolesKeptOnCRDDeletion = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "podidentity_roles_kept_on_crd_deletion_total",
	Help: "IAM roles kept as Retain records because their PodIdentityBinding was deleted with its CRD.",
})

// changesDeferred counts binding changes that waited in line for their
// namespace's budget (--namespace-change-qps). No namespace label: the set
// of namespaces is the tenants' to grow; the operator's log names them at
// -v=1.
var changesDeferred = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "podidentity_changes_deferred_total",
	Help: "Created, edited or deleted PodIdentityBindings that waited in line because their namespace had spent its budget of changes per second.",
})

func init() {
	ctrlmetrics.Registry.MustRegister(driftCorrections, guardrailEnforcements, statusWriteFailures, orphansRetired, rolesKeptOnCRDDeletion, changesDeferred)
	for _, a := range []string{"Retained", "Parked"} {
		orphansRetired.WithLabelValues(a, "operator")
	}
	for _, r := range []string{"Invalid", "Conflict", "Other"} {
		statusWriteFailures.WithLabelValues(r)
	}
	for _, k := range vocab.ChangeKinds {
		driftCorrections.WithLabelValues(string(k), "operator")
		guardrailEnforcements.WithLabelValues(string(k), "operator")
	}
}

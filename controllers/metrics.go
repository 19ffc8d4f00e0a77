package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// driftCorrections counts corrections of changes made outside the operator,
// by kind (TrustPolicy, InlinePolicy, ExtraInlinePolicy, ManagedPolicies,
// PermissionsBoundary, MaxSessionDuration, Description, Tags, RoleDeleted).
var driftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_drift_corrections_total",
	Help: "Changes made outside the operator that it corrected, by kind.",
}, []string{"kind"})

func init() {
	ctrlmetrics.Registry.MustRegister(driftCorrections)
}

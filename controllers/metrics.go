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

// driftKinds are the values of the kind label, exported at zero from the start
// so dashboards and alerts see the series before the first correction.
var driftKinds = []string{"TrustPolicy", "InlinePolicy", "ExtraInlinePolicy", "ManagedPolicies",
	"PermissionsBoundary", "MaxSessionDuration", "Description", "Tags", "RoleDeleted"}

func init() {
	ctrlmetrics.Registry.MustRegister(driftCorrections)
	for _, k := range driftKinds {
		driftCorrections.WithLabelValues(k)
	}
}

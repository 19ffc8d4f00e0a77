package role

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// roleCacheLookups counts a reconcile's lookups of its role in the role
// cache by result: hit (no IAM read), miss (not known), expired (older than
// the cache's TTL), unlisted (known from a sweep that has not listed the
// role's description yet). Every result but hit costs one read of the role.
var roleCacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_role_cache_lookups_total",
	Help: "Lookups of a role in the operator's role cache, by result and AWS account (operator: the operator's own); every result but hit reads the role from IAM.",
}, []string{"result", "account"})

func init() {
	ctrlmetrics.Registry.MustRegister(roleCacheLookups)
	for _, r := range []string{"hit", "miss", "expired", "unlisted"} {
		roleCacheLookups.WithLabelValues(r, "operator")
	}
}

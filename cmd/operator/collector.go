package operator

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/binding"
	"github.com/podidentity/podidentity-operator/internal/accounts"
)

// bindingsCollector reports podidentity_bindings{ready,reason,account}: the
// bindings by the status of their Ready condition and their role's account, and podidentity_pods{state}: the running
// pods of bound ServiceAccounts by whether they carry the current role's
// credentials (from status.pods). Both are counted from the manager's cache
// at scrape time, read-only from the informer's store (a list through the
// client would copy every binding at every scrape). Only the leader exports
// them (elected is closed once it leads): every replica's cache holds every
// binding, and sum() over two replicas would count each twice. With no
// leader the series are absent, which the PodIdentityOperatorDown alert
// watches.
type bindingsCollector struct {
	informers cache.Informers
	elected   <-chan struct{}
	desc      *prometheus.Desc
	pods      *prometheus.Desc
}

func newBindingsCollector(informers cache.Informers, elected <-chan struct{}) *bindingsCollector {
	return &bindingsCollector{informers: informers, elected: elected,
		desc: prometheus.NewDesc("podidentity_bindings",
			"PodIdentityBindings by the status and reason of their Ready condition and the AWS account of their role (operator: the operator's own).", []string{"ready", "reason", "account"}, nil),
		pods: prometheus.NewDesc("podidentity_pods",
			"Running pods of bound ServiceAccounts: current (they carry the current role's credentials) or stale (restart them).", []string{"state"}, nil)}
}

func (c *bindingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.pods }

func (c *bindingsCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return // not the leader: the leader exports them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bindings, err := binding.CachedBindings(ctx, c.informers)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	type key struct{ ready, reason, account string }
	counts := map[key]float64{{"True", v1alpha1.ReasonAvailable, "operator"}: 0}
	pods := map[string]float64{"current": 0, "stale": 0}
	for _, b := range bindings {
		if p := b.Status.Pods; p != nil {
			pods["current"] += float64(p.Current)
			pods["stale"] += float64(p.Stale)
		}
		k := key{"Unknown", "", accounts.Label(b.Status.Account)}
		if cond := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
			k.ready, k.reason = string(cond.Status), cond.Reason
		}
		counts[k]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, k.ready, k.reason, k.account)
	}
	for state, n := range pods {
		ch <- prometheus.MustNewConstMetric(c.pods, prometheus.GaugeValue, n, state)
	}
}

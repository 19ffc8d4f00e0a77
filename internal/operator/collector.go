package operator

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// bindingsCollector reports podidentity_bindings{ready}: the bindings by the
// status of their Ready condition, counted from the manager's cache at scrape time.
type bindingsCollector struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func newBindingsCollector(r client.Reader) *bindingsCollector {
	return &bindingsCollector{reader: r, desc: prometheus.NewDesc("podidentity_bindings",
		"PodIdentityBindings by the status of their Ready condition (True, False, Unknown).", []string{"ready"}, nil)}
}

func (c *bindingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *bindingsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &v1alpha1.PodIdentityBindingList{}
	if err := c.reader.List(ctx, list); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[string]float64{"True": 0, "False": 0, "Unknown": 0}
	for i := range list.Items {
		status := "Unknown"
		if cond := meta.FindStatusCondition(list.Items[i].Status.Conditions, v1alpha1.ConditionReady); cond != nil {
			status = string(cond.Status)
		}
		counts[status]++
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, status)
	}
}

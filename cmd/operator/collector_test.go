package operator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// countingInformers is a cache.Informers whose GetInformer counts its
// calls and fails (the collector then reports that error).
type countingInformers struct {
	cache.Informers
	calls int
}

func (c *countingInformers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	c.calls++
	return nil, errors.New("informer read")
}

// Issue 18 (metrics that sum correctly): a replica that does not lead
// exports no state gauges (and reads nothing), so sum() over replicas counts
// each binding once; once it leads, it reads the bindings' informer.
func TestStateGaugesOnlyFromTheLeader(t *testing.T) {
	elected := make(chan struct{})
	informers := &countingInformers{}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newBindingsCollector(informers, elected))
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 || informers.calls != 0 {
		t.Fatalf("a replica that does not lead exports %d series, reads the informers %d times (%v)", n, informers.calls, err)
	}
	close(elected)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "informer read") || informers.calls != 1 {
		t.Fatalf("the leader did not read the bindings: %v, %d reads", err, informers.calls)
	}
}

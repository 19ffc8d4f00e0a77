package operator

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Issue 18 (metrics that sum correctly): a replica that does not lead
// exports no state gauges, so sum() over replicas counts each binding once.
func TestStateGaugesOnlyFromTheLeader(t *testing.T) {
	elected := make(chan struct{})
	c := newBindingsCollector(nil, elected)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("a replica that does not lead exports %d series (%v)", n, err)
	}
	close(elected)
	// The leader reads the informers; with none it reports the error,
	// which shows it now collects.
	if _, err := reg.Gather(); err == nil {
		t.Fatal("the leader did not collect")
	}
}

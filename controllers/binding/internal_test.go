package binding

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/planner"
)

// After any number of failures a binding is retried within the cap, so after
// an IAM outage every binding is back within one cap of IAM's recovery.
func TestFailureBackoffIsCapped(t *testing.T) {
	rl := failureRateLimiter(time.Minute)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "b"}}
	var last time.Duration
	for range 40 {
		last = rl.When(req)
	}
	if last > time.Minute || last < 30*time.Second {
		t.Errorf("back-off after 40 failures = %s, want the 1m cap", last)
	}
	rl.Forget(req)
	if d := rl.When(req); d > time.Second {
		t.Errorf("back-off after success = %s", d)
	}
}

func TestNeedsReconcile(t *testing.T) {
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: 1}}
	}
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: v1alpha1.PodIdentityBindingStatus{
		RoleName: "r", ServiceAccountName: "sa", Conditions: ready(metav1.ConditionTrue, "Available")}}
	inSync := planner.Plan{Current: "r", ServiceAccount: "sa", Ready: true,
		Before: []planner.Action{{Op: planner.OpUpdate, Name: "r"}}}
	cases := map[string]struct {
		status []metav1.Condition
		plan   func(p *planner.Plan)
		want   bool
	}{
		"in sync":                 {plan: func(*planner.Plan) {}, want: false},
		"a write":                 {plan: func(p *planner.Plan) { p.Before[0].Op = planner.OpCreate }, want: true},
		"a role to retire":        {plan: func(p *planner.Plan) { p.After = []planner.Action{{Op: planner.OpDelete, Name: "old"}} }, want: true},
		"the annotation released": {plan: func(p *planner.Plan) { p.Current, p.ServiceAccount, p.Before = "", "", nil }, want: true},
		"the annotation moves":    {plan: func(p *planner.Plan) { p.ServiceAccount = "other" }, want: true},
		"no longer Ready":         {plan: func(p *planner.Plan) { p.Ready, p.Reason = false, "GuardrailViolation" }, want: true},
		"still the same failure": {status: ready(metav1.ConditionFalse, "GuardrailViolation"),
			plan: func(p *planner.Plan) { p.Ready, p.Reason = false, "GuardrailViolation" }, want: false},
	}
	for name, tc := range cases {
		bb := b.DeepCopy()
		if tc.status != nil {
			bb.Status.Conditions = tc.status
		}
		p := inSync
		p.Before = append([]planner.Action(nil), inSync.Before...)
		tc.plan(&p)
		if got := needsReconcile(bb, p); got != tc.want {
			t.Errorf("%s: needsReconcile = %v, want %v", name, got, tc.want)
		}
	}
}

// Issue 17 defect 4: a namespace that floods the queue does not hold up
// another namespace's item; order within a namespace is kept.
func TestFairQueueServesAQuietNamespaceFirst(t *testing.T) {
	q := newFairQueue(logr.Discard())("test", workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	for i := range 500 {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "storm", Name: fmt.Sprintf("b%03d", i)}})
	}
	q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "quiet", Name: "new"}})
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() < 501 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the priority queue adds asynchronously
	}
	var order []string
	for range 501 {
		item, shutdown := q.Get()
		if shutdown {
			t.Fatal("shut down")
		}
		order = append(order, item.Namespace+"/"+item.Name)
		q.Done(item)
	}
	// The storm's first fairAddsPerStep items are not penalised yet; the
	// quiet namespace's item comes right after them, before the other 490.
	if i := slices.Index(order, "quiet/new"); i > fairAddsPerStep {
		t.Errorf("the quiet namespace's item was served %dth", i+1)
	}
	// Within the storm namespace, first in, first out.
	storm := slices.DeleteFunc(slices.Clone(order), func(s string) bool { return s == "quiet/new" })
	if !slices.IsSorted(storm) {
		t.Errorf("storm items out of order: %v", storm[:20])
	}
}

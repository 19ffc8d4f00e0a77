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
	"github.com/podidentity/podidentity-operator/internal/vocab"
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

// Issue 17 defect 4 (I7): each namespace has a budget of changes; a
// binding waiting for it keeps its place (it is not charged twice, and one
// back early waits only the rest), a deleted one gives its token back, and
// another namespace is never charged for it.
func TestNamespaceBudget(t *testing.T) {
	if newBudget(0, 5) != nil {
		t.Fatal("a budget of 0 per second should be none")
	}
	var none *budget
	if d := none.wait(types.NamespacedName{Namespace: "a", Name: "x"}); d != 0 {
		t.Fatalf("no budget waited %s", d)
	}
	none.forget(types.NamespacedName{Namespace: "a", Name: "x"})

	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	now := start
	g := newBudget(1, 3)
	g.now = func() time.Time { return now }
	key := func(ns string, i int) types.NamespacedName {
		return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("b%d", i)}
	}
	for i := range 3 {
		if d := g.wait(key("storm", i)); d != 0 {
			t.Fatalf("change %d within the burst waited %s", i, d)
		}
	}
	if d := g.wait(key("storm", 3)); d != time.Second {
		t.Fatalf("the fourth change waits %s, want 1s", d)
	}
	if d := g.wait(key("quiet", 0)); d != 0 {
		t.Fatalf("another namespace waited %s for the storm's budget", d)
	}
	now = start.Add(400 * time.Millisecond)
	if d := g.wait(key("storm", 3)); d != 600*time.Millisecond {
		t.Fatalf("back early, the fourth change waits %s, want the remaining 600ms", d)
	}
	if d := g.wait(key("storm", 4)); d != 1600*time.Millisecond {
		t.Fatalf("the fifth change waits %s, want 1.6s (behind the fourth)", d)
	}
	now = start.Add(time.Second)
	if d := g.wait(key("storm", 3)); d != 0 {
		t.Fatalf("on time, the fourth change waited %s again", d)
	}
	// The fifth binding is deleted while waiting: its token goes back, so
	// the sixth change waits only as long as the fifth would have.
	g.forget(key("storm", 4))
	if d := g.wait(key("storm", 5)); d != time.Second {
		t.Fatalf("after the fifth gave its token back, the sixth waits %s, want 1s", d)
	}
	if len(g.held) != 1 {
		t.Errorf("%d reservations held, want only the sixth's", len(g.held))
	}
}

// charged: only changes the operator has not handled spend the budget.
func TestChargedChanges(t *testing.T) {
	now := metav1.Now()
	ready := func(gen int64, status metav1.ConditionStatus, reason string) v1alpha1.PodIdentityBindingStatus {
		return v1alpha1.PodIdentityBindingStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: gen}}}
	}
	for _, c := range []struct {
		name string
		b    v1alpha1.PodIdentityBinding
		want bool
	}{
		{"new", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 1}}, true},
		{"edited", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Status: ready(2, metav1.ConditionTrue, v1alpha1.ReasonAvailable)}, true},
		{"handled", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Status: ready(3, metav1.ConditionTrue, v1alpha1.ReasonAvailable)}, false},
		{"handled, failed: a retry", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Status: ready(3, metav1.ConditionFalse, v1alpha1.ReasonIAMUnavailable)}, false},
		{"deleted, never handled: nothing to do", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 1, DeletionTimestamp: &now}}, false},
		{"deletion not handled", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 3, DeletionTimestamp: &now, Finalizers: []string{vocab.Finalizer}}, Status: ready(3, metav1.ConditionTrue, v1alpha1.ReasonAvailable)}, true},
		{"deletion handled, retried", v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 3, DeletionTimestamp: &now, Finalizers: []string{vocab.Finalizer}}, Status: ready(3, metav1.ConditionFalse, v1alpha1.ReasonDeleteFailed)}, false},
	} {
		if got := charged(&c.b); got != c.want {
			t.Errorf("%s: charged = %v, want %v", c.name, got, c.want)
		}
	}
}

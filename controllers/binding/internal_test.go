package binding

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	if !none.take(&v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "x"}}) {
		t.Fatal("no budget parked a change")
	}
	none.forget(types.NamespacedName{Namespace: "a", Name: "x"})

	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	now := start
	g := newBudget(1, 3)
	g.now = func() time.Time { return now }
	key := func(ns string, i int) types.NamespacedName {
		return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("b%d", i)}
	}
	// bind is the binding of key at its first generation; first is that
	// change.
	bind := func(k types.NamespacedName) *v1alpha1.PodIdentityBinding {
		return &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, Generation: 1}}
	}
	first := change{generation: 1}
	release := func(want time.Duration, granted ...types.NamespacedName) {
		t.Helper()
		got, next := g.release()
		if !slices.Equal(got, granted) || next != want {
			t.Fatalf("at %s: released %v, next token in %s; want %v, %s", now.Sub(start), got, next, granted, want)
		}
	}
	for i := range 3 {
		if !g.take(bind(key("storm", i))) {
			t.Fatalf("change %d within the burst was parked", i)
		}
	}
	if g.take(bind(key("storm", 3))) {
		t.Fatal("the fourth change went ahead past the burst")
	}
	if !g.take(bind(key("quiet", 0))) {
		t.Fatal("another namespace was parked behind the storm's budget")
	}
	// A watch event parks the fifth behind the fourth; another event
	// for the fourth does not move it.
	if g.enter(key("storm", 4), first, false) || g.enter(key("storm", 3), first, false) {
		t.Fatal("a change without a token passed the gate")
	}
	release(time.Second)
	now = start.Add(time.Second)
	release(time.Second, key("storm", 3))
	if !g.enter(key("storm", 3), first, false) || !g.take(bind(key("storm", 3))) {
		t.Fatal("the fourth change's grant was not honoured")
	}
	// The fifth binding is deleted while waiting: it leaves the line
	// without spending a token, so the next change goes ahead on it.
	g.forget(key("storm", 4))
	now = start.Add(2 * time.Second)
	release(0)
	if !g.take(bind(key("storm", 5))) {
		t.Fatal("a change after the line emptied waited for the deleted binding's token")
	}
	// In line order, one token per second.
	for i := 6; i < 9; i++ {
		if g.enter(key("storm", i), first, false) {
			t.Fatalf("change %d passed without a token", i)
		}
	}
	now = start.Add(4 * time.Second)
	release(time.Second, key("storm", 6), key("storm", 7))
	g.forget(key("storm", 7))
	if s := g.spaces["storm"]; len(s.granted) != 1 || len(s.parked) != 1 || s.line.Len() != 1 {
		t.Errorf("a deleted binding's grant was kept: %d granted, %d parked", len(s.granted), len(s.parked))
	}
}

// A change is paid for once: another reconcile of it (a cache that does
// not show its status yet, a retry after a failure) neither spends a token
// nor goes back in line; a new generation or the deletion is a new change.
func TestNamespaceBudgetChargesAChangeOnce(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	g := newBudget(1, 1)
	g.now = func() time.Time { return now }
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Generation: 1}}
	other := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", Generation: 1}}
	if !g.take(b) || g.take(other) {
		t.Fatal("want the first change through on the burst, the second in line")
	}
	if !g.take(b) || !g.take(b) {
		t.Fatal("a reconcile of a change already paid for was charged again")
	}
	if _, ok := g.spaces["ns"].parked[client.ObjectKeyFromObject(b)]; ok {
		t.Fatal("a change already paid for joined the line")
	}
	edited := b.DeepCopy()
	edited.Generation = 2
	if g.take(edited) {
		t.Fatal("a new generation went ahead without a token")
	}
	deleting := b.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	g.forget(client.ObjectKeyFromObject(b))
	if g.take(deleting) {
		t.Fatal("the deletion went ahead on the generation's token")
	}
	g.settled(client.ObjectKeyFromObject(b))
	g.settled(client.ObjectKeyFromObject(other))
	if s := g.spaces["ns"]; len(s.paid) != 0 || len(s.granted) != 0 {
		t.Errorf("settled bindings still recorded: %d paid, %d granted", len(s.paid), len(s.granted))
	}
}

// run adds a parked binding to the queue once its token is due.
func TestNamespaceBudgetRun(t *testing.T) {
	g := newBudget(20, 1)
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	bind := func(k types.NamespacedName) *v1alpha1.PodIdentityBinding {
		return &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, Generation: 1}}
	}
	if !g.take(bind(a)) || g.take(bind(b)) {
		t.Fatal("want a through, b parked")
	}
	queued := make(chan types.NamespacedName, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go g.run(ctx, func(k types.NamespacedName) { queued <- k })
	select {
	case k := <-queued:
		if k != b || !g.take(bind(b)) {
			t.Fatalf("queued %v, want b with its token", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b was never queued")
	}
}

// gate: a change without a token never reaches the queue, a handled
// binding always does, and a deletion leaves the line.
func TestNamespaceBudgetGate(t *testing.T) {
	g := newBudget(1, 1)
	gate := g.gate()
	bind := func(name string, handled bool) *v1alpha1.PodIdentityBinding {
		b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "storm", Name: name, Generation: 1}}
		if handled {
			b.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1}}
		}
		return b
	}
	if !gate.Create(event.CreateEvent{Object: bind("first", false)}) {
		t.Fatal("the first change was not queued")
	}
	if gate.Create(event.CreateEvent{Object: bind("second", false)}) {
		t.Fatal("a change without a token was queued")
	}
	if !gate.Create(event.CreateEvent{Object: bind("handled", true)}) || !gate.Update(event.UpdateEvent{ObjectOld: bind("handled", true), ObjectNew: bind("handled", true)}) {
		t.Fatal("a handled binding (a restart's list, drift) waited for the budget")
	}
	if gate.Delete(event.DeleteEvent{Object: bind("second", false)}) {
		t.Fatal("a deleted binding was queued")
	}
	if s := g.spaces["storm"]; s.line.Len() != 0 || len(s.granted) != 1 {
		t.Errorf("after the deletion: %d waiting, %d granted; want 0, 1 (the first's, until its reconcile)", s.line.Len(), len(s.granted))
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

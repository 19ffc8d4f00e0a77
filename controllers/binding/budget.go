package binding

import (
	"container/list"
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Namespace budgets (issue 17, defect 4, invariant I7): what a tenant
// changes (a binding created, edited or deleted) costs the operator IAM
// calls, Kubernetes writes and CPU shared with every other tenant. The fair
// queue serves a quiet namespace first, but a tenant looping creates and
// deletes at the API server's pace still keeps every worker, the IAM rate
// limit and the API server busy with its own changes. Each namespace
// therefore gets a token bucket of changes per second: a binding whose
// generation the operator has not yet handled, or whose deletion it has not
// yet started, needs a token before it is reconciled. Everything else (a
// restart, a guardrail or account change, drift, a retry) is the operator's
// own work and needs none.
//
// A change without a token waits in its namespace's line, not in the
// controller's queue: the binding's watch event parks it there (gate), and
// run hands tokens to the line in order as they come, adding each binding
// to the queue once. A binding deleted while it waits leaves the line
// without ever reaching a worker, so a create-and-delete loop costs the
// operator one watch event per operation and nothing more.
type budget struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu     sync.Mutex
	spaces map[string]*space
	// waiting are the spaces with a line, for run.
	waiting map[string]*space
	// wake tells run that a line started.
	wake chan struct{}
}

// space is one namespace's budget.
type space struct {
	tokens *rate.Limiter
	// line holds the bindings waiting for a token, oldest first; parked
	// indexes it.
	line   *list.List
	parked map[types.NamespacedName]*list.Element
	// granted bindings have their token and are on their way to a worker.
	granted map[types.NamespacedName]struct{}
	// paid are the changes a reconcile has spent a token on, until a
	// reconcile sees them handled (settled): another reconcile of the same
	// change, from a cache that does not show its status yet or retrying
	// a failure, is not charged again.
	paid map[types.NamespacedName]change
}

// change identifies what a token pays for: a binding's generation, or its
// deletion.
type change struct {
	generation int64
	deleting   bool
}

func changeOf(b *v1alpha1.PodIdentityBinding) change {
	return change{generation: b.Generation, deleting: !b.DeletionTimestamp.IsZero()}
}

// budgetMaxNamespaces bounds the table of spaces.
const budgetMaxNamespaces = 10_000

// newBudget returns nil (no budget) when qps is not positive.
func newBudget(qps float64, burst int) *budget {
	if qps <= 0 {
		return nil
	}
	return &budget{limit: rate.Limit(qps), burst: max(burst, 1), now: time.Now,
		spaces: map[string]*space{}, waiting: map[string]*space{}, wake: make(chan struct{}, 1)}
}

// charged reports whether reconciling the binding spends its namespace's
// budget: a change the operator has not handled yet. A handled generation
// has a Ready condition that records it, whatever its outcome (so retries
// after failures are free); a handled deletion says Deleting or
// DeleteFailed. A binding deleted without the operator's finalizer leaves
// nothing to do.
func charged(b *v1alpha1.PodIdentityBinding) bool {
	if !b.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(b, vocab.Finalizer) {
		return false
	}
	ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.ObservedGeneration != b.Generation {
		return true
	}
	return !b.DeletionTimestamp.IsZero() && ready.Reason != v1alpha1.ReasonDeleting && ready.Reason != v1alpha1.ReasonDeleteFailed
}

// gate is the binding watch's last predicate: an event of a change
// without a token parks the binding in its namespace's line instead of
// adding it to the queue, and a deleted binding leaves the line (a
// reconcile of a binding that is gone has nothing else to do).
func (g *budget) gate() predicate.Funcs {
	admits := func(o client.Object) bool {
		b, ok := o.(*v1alpha1.PodIdentityBinding)
		return !ok || !charged(b) || g.enter(client.ObjectKeyFromObject(o), changeOf(b), false)
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return admits(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return admits(e.ObjectNew) },
		DeleteFunc: func(e event.DeleteEvent) bool {
			g.forget(client.ObjectKeyFromObject(e.Object))
			return false
		},
	}
}

// take reports whether a reconcile of a charged binding may go on: its
// change is paid for, or it uses the token granted to it, or takes one;
// false parks it in the line (run adds it to the queue when its token
// comes).
func (g *budget) take(b *v1alpha1.PodIdentityBinding) bool {
	return g.enter(client.ObjectKeyFromObject(b), changeOf(b), true)
}

// settled forgets what a binding paid for once a reconcile sees its
// change handled.
func (g *budget) settled(key types.NamespacedName) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.spaces[key.Namespace]; s != nil {
		delete(s.paid, key)
		delete(s.granted, key)
	}
}

// enter admits a change that is paid for or granted a token, or takes one
// if its namespace has one and nobody waits ahead of it; otherwise the
// binding joins the line. A reconcile (use) spends the grant on the
// change; a watch event keeps it for the reconcile it queues.
func (g *budget) enter(key types.NamespacedName, c change, use bool) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s := g.space(key.Namespace, now)
	if p, ok := s.paid[key]; ok && p == c {
		return true
	}
	if _, ok := s.granted[key]; ok {
		if use {
			delete(s.granted, key)
			s.paid[key] = c
		}
		return true
	}
	if _, ok := s.parked[key]; ok {
		return false
	}
	if s.line.Len() == 0 && s.tokens.AllowN(now, 1) {
		if use {
			s.paid[key] = c
		} else {
			s.granted[key] = struct{}{}
		}
		return true
	}
	s.parked[key] = s.line.PushBack(key)
	g.waiting[key.Namespace] = s
	changesDeferred.Inc()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return false
}

// forget drops a deleted binding from the line or its grant.
func (g *budget) forget(key types.NamespacedName) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.spaces[key.Namespace]
	if s == nil {
		return
	}
	delete(s.granted, key)
	delete(s.paid, key)
	if e, ok := s.parked[key]; ok {
		s.line.Remove(e)
		delete(s.parked, key)
		if s.line.Len() == 0 {
			delete(g.waiting, key.Namespace)
		}
	}
}

// release grants the tokens due by now to the heads of the lines and
// returns the bindings granted and how long until the next token is due
// for a line (0 when no line waits).
func (g *budget) release() ([]types.NamespacedName, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []types.NamespacedName
	var next time.Duration
	for ns, s := range g.waiting {
		for s.line.Len() > 0 && s.tokens.AllowN(now, 1) {
			key := s.line.Remove(s.line.Front()).(types.NamespacedName)
			delete(s.parked, key)
			s.granted[key] = struct{}{}
			out = append(out, key)
		}
		if s.line.Len() == 0 {
			delete(g.waiting, ns)
			continue
		}
		d := max(time.Duration((1-s.tokens.TokensAt(now))/float64(g.limit)*float64(time.Second)), time.Millisecond)
		if next == 0 || d < next {
			next = d
		}
	}
	return out, next
}

// run hands tokens to the lines as they come and adds each granted binding
// to the queue, until ctx ends.
func (g *budget) run(ctx context.Context, enqueue func(types.NamespacedName)) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		granted, next := g.release()
		for _, key := range granted {
			enqueue(key)
		}
		var due <-chan time.Time
		if next > 0 {
			timer.Reset(next)
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		case <-due:
		}
		timer.Stop()
	}
}

func (g *budget) space(namespace string, now time.Time) *space {
	s := g.spaces[namespace]
	if s != nil {
		return s
	}
	if len(g.spaces) >= budgetMaxNamespaces {
		for ns, s := range g.spaces {
			if s.line.Len() == 0 && len(s.granted) == 0 && len(s.paid) == 0 && s.tokens.TokensAt(now) >= float64(g.burst) {
				delete(g.spaces, ns)
			}
		}
	}
	s = &space{tokens: rate.NewLimiter(g.limit, g.burst), line: list.New(),
		parked: map[types.NamespacedName]*list.Element{}, granted: map[types.NamespacedName]struct{}{}, paid: map[types.NamespacedName]change{}}
	g.spaces[namespace] = s
	return s
}

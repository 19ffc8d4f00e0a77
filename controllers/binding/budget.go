package binding

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Namespace budgets (issue 17, defect 4, invariant I7): what a tenant
// changes (a binding created, edited or deleted) costs the operator IAM
// calls, Kubernetes writes and CPU shared with every other tenant. The fair
// queue serves a quiet namespace first, but a tenant looping creates and
// deletes at the API server's pace still keeps every worker, the IAM rate
// limit and the API server busy with its own changes. Each namespace
// therefore gets a token bucket of changes per second: a reconcile of a
// binding whose generation the operator has not yet handled, or whose
// deletion it has not yet finished, takes a token, and waits in the queue
// when there is none. Everything else (a restart, a guardrail or account
// change, drift, a retry) is the operator's own work and takes none. A
// create-and-delete loop then mostly deletes bindings the operator never
// got to, which cost it nothing.
type budget struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu sync.Mutex
	// buckets are the namespaces' token buckets; a full one is the same
	// as none and is dropped when the table is full.
	buckets map[string]*rate.Limiter
	// held are tokens reserved for bindings waiting their turn, so a
	// binding back from the queue early (another event) keeps its place
	// and one back on time does not pay twice.
	held map[types.NamespacedName]*rate.Reservation
}

// budgetMaxNamespaces bounds the table of buckets.
const budgetMaxNamespaces = 10_000

// newBudget returns nil (no budget) when qps is not positive.
func newBudget(qps float64, burst int) *budget {
	if qps <= 0 {
		return nil
	}
	return &budget{limit: rate.Limit(qps), burst: max(burst, 1), now: time.Now,
		buckets: map[string]*rate.Limiter{}, held: map[types.NamespacedName]*rate.Reservation{}}
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

// wait returns how long the binding must wait for its namespace's budget
// (0: reconcile now).
func (g *budget) wait(key types.NamespacedName) time.Duration {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if r, ok := g.held[key]; ok {
		if d := r.DelayFrom(now); d > 0 {
			return d
		}
		delete(g.held, key)
		return 0
	}
	r := g.bucket(key.Namespace, now).ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d > 0 {
		g.held[key] = r
	}
	return d
}

// forget gives back the token a deleted binding was waiting for.
func (g *budget) forget(key types.NamespacedName) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.held[key]; ok {
		r.CancelAt(g.now())
		delete(g.held, key)
	}
}

func (g *budget) bucket(namespace string, now time.Time) *rate.Limiter {
	l := g.buckets[namespace]
	if l != nil {
		return l
	}
	if len(g.buckets) >= budgetMaxNamespaces {
		for ns, b := range g.buckets {
			if b.TokensAt(now) >= float64(g.burst) {
				delete(g.buckets, ns)
			}
		}
	}
	l = rate.NewLimiter(g.limit, g.burst)
	g.buckets[namespace] = l
	return l
}

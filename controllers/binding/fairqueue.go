package binding

import (
	"math"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Namespace fairness (issue 17, defect 4): one tenant looping creates,
// deletes or edits at the API server's pace must not hold up another
// namespace's new binding. The controller's queue is controller-runtime's
// priority queue; fairQueue lowers the priority of every item by how busy
// its namespace has been lately (adds per namespace, decaying with a
// half-life of fairHalfLife). A quiet namespace's binding is then served
// before a busy namespace's backlog, while order within a namespace and
// every other queue semantics (deduplication, one worker per item, rate
// limiting, delays) stay the priority queue's.
const (
	fairHalfLife = 10 * time.Second
	// fairAddsPerStep is how many recent adds lower a namespace's items by
	// one priority step, up to fairMaxPenalty steps (the initial list's
	// handler.LowPriority, -100, stays below every penalised namespace).
	fairAddsPerStep = 10
	fairMaxPenalty  = 99
	// fairMaxNamespaces bounds the table; quiet namespaces are dropped first.
	fairMaxNamespaces = 10_000
)

type fairQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	now func() time.Time

	mu   sync.Mutex
	load map[string]*nsLoad
}

type nsLoad struct {
	adds float64 // decayed count of adds
	at   time.Time
}

// newFairQueue is a controller.Options.NewQueue.
func newFairQueue(log logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		inner := priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = log.WithValues("controller", name)
			o.RateLimiter = rl
		})
		return &fairQueue{PriorityQueue: inner, now: time.Now, load: map[string]*nsLoad{}}
	}
}

// penalty records one add for namespace and returns how many priority steps
// its items lose.
func (q *fairQueue) penalty(namespace string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	l := q.load[namespace]
	if l == nil {
		if len(q.load) >= fairMaxNamespaces {
			q.forgetQuiet(now)
		}
		l = &nsLoad{at: now}
		q.load[namespace] = l
	}
	l.adds = decayed(l, now) + 1
	l.at = now
	return min(int(l.adds)/fairAddsPerStep, fairMaxPenalty)
}

func decayed(l *nsLoad, now time.Time) float64 {
	return l.adds * math.Exp2(-now.Sub(l.at).Seconds()/fairHalfLife.Seconds())
}

// forgetQuiet drops namespaces whose load has decayed below one add.
func (q *fairQueue) forgetQuiet(now time.Time) {
	for ns, l := range q.load {
		if decayed(l, now) < 1 {
			delete(q.load, ns)
		}
	}
}

// AddWithOpts adds items at their priority lowered by their namespace's load.
func (q *fairQueue) AddWithOpts(o priorityqueue.AddOpts, items ...reconcile.Request) {
	base := 0
	if o.Priority != nil {
		base = *o.Priority
	}
	for _, it := range items {
		p := base - q.penalty(it.Namespace)
		q.PriorityQueue.AddWithOpts(priorityqueue.AddOpts{After: o.After, RateLimited: o.RateLimited, Priority: &p}, it)
	}
}

func (q *fairQueue) Add(item reconcile.Request) { q.AddWithOpts(priorityqueue.AddOpts{}, item) }

func (q *fairQueue) AddAfter(item reconcile.Request, d time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{After: d}, item)
}

func (q *fairQueue) AddRateLimited(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{RateLimited: true}, item)
}

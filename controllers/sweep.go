package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/planner"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Sweeper detects drift in IAM for every binding at once. Once per sync
// period (jittered) it reads a snapshot of the account's roles under the
// operator's path (role.Snapshot: a few paginated calls, whatever the number
// of bindings), plans every binding against it exactly as a reconcile would,
// and enqueues only the bindings whose plan would write or whose status
// would change. A binding's own reconcile (create, spec change, restart,
// enqueued by the sweep) still reads its roles directly.
type Sweeper struct {
	Reconciler *Reconciler
	// Snapshot reads the roles (role.Snapshot in production).
	Snapshot func(ctx context.Context) (map[string]*role.Observed, error)
	Period   time.Duration
	Log      logr.Logger
	// Cache, when set, is refilled from every snapshot, so reconciles reuse
	// it instead of reading each role.
	Cache *RoleCache

	// informers, set by the reconciler's SetupWithManager, holds the
	// bindings' informer: the sweep reads its store instead of a copy.
	informers ctrlcache.Informers

	events chan event.GenericEvent
	once   sync.Once
}

// Events carries the bindings to reconcile.
func (s *Sweeper) Events() <-chan event.GenericEvent {
	s.once.Do(func() { s.events = make(chan event.GenericEvent, 1024) })
	return s.events
}

// NeedLeaderElection: only the leader sweeps (it is the one reconciling).
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps at once (filling the cache after a start) and then every
// period until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	s.Events()
	next := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
		next = wait.Jitter(s.Period, 0.1)
		start := time.Now()
		drifted, err := s.Sweep(ctx)
		if err != nil {
			// The next period tries again; bindings keep their state.
			s.Log.Error(err, "drift sweep failed")
			continue
		}
		s.Log.V(1).Info("drift sweep", "enqueued", len(drifted), "took", time.Since(start))
	}
}

// Sweep runs once and returns the bindings it enqueued.
func (s *Sweeper) Sweep(ctx context.Context) ([]*v1alpha1.PodIdentityBinding, error) {
	at := time.Now()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if s.Cache != nil {
		s.Cache.Fill(snap, at)
	}
	r := s.Reconciler
	bindings, err := s.bindings(ctx)
	if err != nil {
		return nil, err
	}
	observe := func(_ context.Context, name string) (*role.Observed, error) { return snap[name], nil }
	policies := &sweepPolicies{inner: r.Policies, seen: map[string]guard.ManagedPolicy{}}
	var drifted []*v1alpha1.PodIdentityBinding
	for _, b := range bindings {
		if !b.DeletionTimestamp.IsZero() {
			continue // being deleted: its own reconciles are running
		}
		in, err := r.gatherWith(ctx, b, observe, policies)
		if err != nil {
			// A managed policy could not be read now: let the binding's own
			// reconcile decide (it fails closed).
			drifted = append(drifted, b)
			continue
		}
		if needsReconcile(b, planner.Compute(in)) {
			drifted = append(drifted, b)
		}
	}
	for _, b := range drifted {
		select {
		case s.events <- event.GenericEvent{Object: b}:
		case <-ctx.Done():
			return drifted, ctx.Err()
		}
	}
	return drifted, nil
}

// bindings returns every cached binding for read-only use (the planner and
// the guard never modify the binding they are given).
func (s *Sweeper) bindings(ctx context.Context) ([]*v1alpha1.PodIdentityBinding, error) {
	if s.informers == nil {
		return nil, errors.New("the sweep runs only once SetupWithManager has registered it")
	}
	return CachedBindings(ctx, s.informers)
}

// CachedBindings returns every cached binding straight from the informer's
// store, for read-only use: a list through the client would copy every
// binding (about 1 KB each) on each call, 10 MB or more at 10,000 bindings
// for each sweep or metrics scrape.
func CachedBindings(ctx context.Context, informers ctrlcache.Informers) ([]*v1alpha1.PodIdentityBinding, error) {
	inf, err := informers.GetInformer(ctx, &v1alpha1.PodIdentityBinding{})
	if err != nil {
		return nil, err
	}
	st, ok := inf.(interface{ GetStore() toolscache.Store })
	if !ok {
		// Fails every sweep test rather than copying silently.
		return nil, fmt.Errorf("the bindings' informer (%T) exposes no store", inf)
	}
	objs := st.GetStore().List()
	out := make([]*v1alpha1.PodIdentityBinding, 0, len(objs))
	for _, o := range objs {
		if b, ok := o.(*v1alpha1.PodIdentityBinding); ok {
			out = append(out, b)
		}
	}
	return out, nil
}

// needsReconcile reports whether applying the plan would write anything in
// IAM, move or release the ServiceAccount annotation, or change the
// binding's status (its role, its ServiceAccount, its Ready condition).
func needsReconcile(b *v1alpha1.PodIdentityBinding, p planner.Plan) bool {
	if p.Current != b.Status.RoleName || p.Current != "" && p.ServiceAccount != b.Status.ServiceAccountName {
		return true
	}
	for _, a := range append(append([]planner.Action(nil), p.Before...), p.After...) {
		if a.Op != planner.OpUpdate || !a.Diff.Empty() {
			return true
		}
	}
	for name := range p.Owned {
		if !ownsRecorded(b, name) {
			return true
		}
	}
	ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.ObservedGeneration != b.Generation {
		return true
	}
	if p.Ready {
		return ready.Status != "True"
	}
	return ready.Status == "True" || ready.Reason != p.Reason
}

func ownsRecorded(b *v1alpha1.PodIdentityBinding, name string) bool {
	for _, r := range b.Status.OwnedRoles {
		if r.Name == name {
			return true
		}
	}
	return false
}

// sweepPolicies reads each managed policy once per sweep, however many
// bindings attach it.
type sweepPolicies struct {
	inner PolicyReader
	seen  map[string]guard.ManagedPolicy
}

func (p *sweepPolicies) Read(ctx context.Context, arns []string) (guard.Managed, error) {
	out := guard.Managed{}
	var missing []string
	for _, a := range arns {
		if m, ok := p.seen[a]; ok {
			out[a] = m
		} else {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	read, err := p.inner.Read(ctx, missing)
	if err != nil {
		return nil, err
	}
	for a, m := range read {
		p.seen[a], out[a] = m, m
	}
	return out, nil
}

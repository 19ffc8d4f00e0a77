package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	Cache *role.Cache

	// informers, set by the reconciler's SetupWithManager, holds the
	// bindings' informer: the sweep reads its store instead of a copy.
	informers ctrlcache.Informers

	events chan event.GenericEvent
	once   sync.Once

	mu sync.Mutex
	// tagged indexes the last snapshot's roles by the binding their
	// ownership tags name ("namespace/name"), Retain records excluded.
	tagged map[string][]string
	// suspects are roles tagged for a binding that did not exist at the
	// last sweep (name -> role ID); seen again, they are retired.
	suspects map[string]string
}

// TaggedFor lists the roles the last snapshot found tagged for the binding
// (cluster, namespace and name), whatever its status records: a reconcile
// plans them with its other candidates, so a role the status forgot (a
// refused status patch) is still retired (invariant I6).
func (s *Sweeper) TaggedFor(namespace, name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagged[namespace+"/"+name]
}

// taggedIndex indexes a snapshot's roles tagged with this cluster by the
// binding their tags name; Retain records are left out (they are let go of).
func taggedIndex(snap map[string]*role.Observed, cluster string) map[string][]string {
	out := map[string][]string{}
	for name, o := range snap {
		if c, _ := role.TagValue(o.Tags, role.TagCluster); c != cluster {
			continue
		}
		if v, _ := role.TagValue(o.Tags, role.TagRetained); v != "" {
			continue
		}
		ns, _ := role.TagValue(o.Tags, role.TagNamespace)
		b, _ := role.TagValue(o.Tags, role.TagBinding)
		if ns == "" || b == "" {
			continue
		}
		key := ns + "/" + b
		out[key] = append(out[key], name)
	}
	return out
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
	tagged := taggedIndex(snap, r.Config.ClusterName)
	live := make(map[string]bool, len(bindings))
	for _, b := range bindings {
		live[b.Namespace+"/"+b.Name] = true
	}
	s.retireVanished(ctx, tagged, live, snap)
	// Keep only what status does not already name: almost every binding's
	// one tagged role is its current one (no memory per binding at scale).
	for _, b := range bindings {
		key := b.Namespace + "/" + b.Name
		if names := tagged[key]; len(names) == 1 && names[0] == b.Status.RoleName {
			delete(tagged, key)
		}
	}
	for key := range tagged {
		if !live[key] {
			delete(tagged, key)
		}
	}
	s.mu.Lock()
	s.tagged = tagged
	s.mu.Unlock()
	assocs, err := s.associations(ctx, bindings)
	if err != nil {
		// Not fatal for the IAM half: the bindings' own resyncs re-read
		// their associations.
		s.Log.Error(err, "listing EKS pod identity associations")
	}
	observe := func(_ context.Context, name string) (*role.Observed, error) { return snap[name], nil }
	policies := &sweepPolicies{inner: r.Policies, seen: map[string]guard.ManagedPolicy{}}
	var drifted []*v1alpha1.PodIdentityBinding
	for _, b := range bindings {
		if !b.DeletionTimestamp.IsZero() {
			continue // being deleted: its own reconciles are running
		}
		if assocs != nil && b.Status.Identity == v1alpha1.IdentityEKSPodIdentity &&
			assocs[b.Namespace+"/"+b.Status.ServiceAccountName] != b.Status.AssociationID {
			drifted = append(drifted, b) // its association is gone or replaced
			continue
		}
		if !r.inHome(ctx, b) {
			continue // other accounts: the binding re-reads its roles each period
		}
		in, err := r.gatherWith(ctx, b, r.home(), nil, observe, policies)
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

// retireVanished retires roles tagged for a binding that no longer exists
// (its finalizer was removed without the operator, say): seen in two sweeps
// in a row with the same role ID, such a role becomes a Retain record, and
// is also parked (every permission removed, a trust that trusts no
// ServiceAccount) when a guardrail of its namespace forbids Retain or the
// namespace is gone (a re-created namespace must not inherit it). Nothing
// in status can name it, so only IAM's tags make it findable (invariant I6).
func (s *Sweeper) retireVanished(ctx context.Context, tagged map[string][]string, live map[string]bool, snap map[string]*role.Observed) {
	prev := s.suspects
	s.suspects = map[string]string{}
	for key, names := range tagged {
		if live[key] {
			continue
		}
		namespace, _, _ := strings.Cut(key, "/")
		for _, name := range names {
			id := snap[name].ID
			if prev[name] != id {
				s.suspects[name] = id // retired at the next sweep if still there
				continue
			}
			action, err := s.retireOrphan(ctx, namespace, name, snap[name])
			if err != nil {
				s.suspects[name] = id
				s.Log.Error(err, "retiring a role whose binding is gone", "role", name, "binding", key)
				continue
			}
			orphansRetired.WithLabelValues(action).Inc()
			s.Log.Info("retired a role whose binding is gone", "role", name, "binding", key, "action", action)
		}
	}
}

func (s *Sweeper) retireOrphan(ctx context.Context, namespace, name string, o *role.Observed) (string, error) {
	r := s.Reconciler
	rules, err := r.Guardrails.RulesFor(ctx, namespace)
	strip := apierrors.IsNotFound(err)
	if err != nil && !strip {
		return "", err
	}
	for _, rule := range rules {
		strip = strip || rule.ForbidRetain
	}
	tags := map[string]string{}
	for k, v := range o.Tags {
		tags[k] = v
	}
	tags[role.TagRetained] = "true"
	if !strip {
		return "Retained", r.Roles.Apply(ctx, role.Desired{Name: name}, role.TagPlan(map[string]string{role.TagRetained: "true"}))
	}
	// Parked as well: no permissions, a trust policy that trusts no
	// ServiceAccount. Not deleted: another cluster misconfigured with this
	// cluster's name could be using it, and a parked role loses nothing.
	d := role.Desired{Name: name, Path: o.Path, Description: o.Description, MaxSessionDuration: o.MaxSessionDuration,
		Trust: planner.ParkedTrust(r.Config), Tags: tags}
	return "Parked", r.Roles.Apply(ctx, d, role.Diff(d, *o))
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
	if len(p.Forget) > 0 {
		return true
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
		if r.Name == name && r.Account == "" {
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
	read, err := readFresh(ctx, p.inner, missing)
	if err != nil {
		return nil, err
	}
	for a, m := range read {
		p.seen[a], out[a] = m, m
	}
	return out, nil
}

// readFresh reads managed policies bypassing any cache of their default
// versions (once per policy per sweep), when the reader has one.
func readFresh(ctx context.Context, r PolicyReader, arns []string) (guard.Managed, error) {
	if f, ok := r.(interface {
		ReadFresh(ctx context.Context, arns []string) (guard.Managed, error)
	}); ok {
		return f.ReadFresh(ctx, arns)
	}
	return r.Read(ctx, arns)
}

// associations lists the cluster's EKS pod identity associations once per
// sweep (pages of 100, whatever the number of bindings), or returns nil when
// no binding uses EKS Pod Identity.
func (s *Sweeper) associations(ctx context.Context, bindings []*v1alpha1.PodIdentityBinding) (map[string]string, error) {
	if s.Reconciler.Associations == nil || !slices.ContainsFunc(bindings, func(b *v1alpha1.PodIdentityBinding) bool {
		return b.Status.Identity == v1alpha1.IdentityEKSPodIdentity
	}) {
		return nil, nil
	}
	return s.Reconciler.Associations.IDs(ctx)
}

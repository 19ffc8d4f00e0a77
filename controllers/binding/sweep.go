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
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/planner"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Sweeper detects drift in IAM for every binding at once. Once per sync
// period (jittered) it reads, in each AWS account the operator acts in, a
// snapshot of the roles under that account's path (role.Snapshot: a few
// paginated calls, whatever the number of bindings), plans every binding
// whose roles are all in that account against it exactly as a reconcile
// would, and enqueues only the bindings whose plan would write or whose
// status would change. A binding's own reconcile (create, spec change,
// restart, enqueued by the sweep) still reads its roles directly; a binding
// moving between accounts is re-read every period instead.
type Sweeper struct {
	Reconciler *Reconciler
	// Snapshot reads the roles of the operator's own account
	// (role.Snapshot in production).
	Snapshot func(ctx context.Context) (map[string]*role.Observed, error)
	Period   time.Duration
	Log      logr.Logger
	// Cache, when set, is refilled from every snapshot, so reconciles reuse
	// it instead of reading each role.
	Cache *role.Cache
	// Accounts, when set, lists the other accounts to sweep, each with its
	// own Snapshot and role cache (accounts.Registry); nil sweeps only the
	// operator's own account.
	Accounts OtherAccounts

	// informers, set by the reconciler's SetupWithManager, holds the
	// bindings' informer: the sweep reads its store instead of a copy.
	informers ctrlcache.Informers

	events chan event.GenericEvent
	kick   chan struct{}
	once   sync.Once

	mu sync.Mutex
	// tagged indexes, per account, the last snapshot's roles by the binding
	// their ownership tags name ("namespace/name"), Retain records excluded.
	tagged map[string]map[string][]string
	// suspects are, per account, roles tagged for a binding that did not
	// exist at the last sweep (name -> role ID); seen again, they are
	// retired.
	suspects map[string]map[string]string
	// swept are the accounts swept at least once.
	swept map[string]bool
}

// OtherAccounts lists the AWS accounts besides the operator's own that the
// sweep reads (accounts.Registry).
type OtherAccounts interface {
	Others(ctx context.Context) ([]*accounts.Account, error)
}

// TaggedFor lists the roles of the account the last snapshot found tagged
// for the binding (cluster, namespace and name), whatever its status
// records: a reconcile plans them with its other candidates, so a role the
// status forgot (a refused status patch) is still retired (invariant I6).
func (s *Sweeper) TaggedFor(account, namespace, name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagged[account][namespace+"/"+name]
}

// TaggedAccounts lists the accounts where the last snapshots found roles
// tagged for the binding that its status does not name as its only role.
func (s *Sweeper) TaggedAccounts(namespace, name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, idx := range s.tagged {
		if len(idx[namespace+"/"+name]) > 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// covers reports whether the sweep reads the account.
func (s *Sweeper) covers(account string) bool {
	return account == accounts.Home || s.Accounts != nil
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
	s.init()
	return s.events
}

func (s *Sweeper) init() {
	s.once.Do(func() {
		s.events = make(chan event.GenericEvent, 1024)
		s.kick = make(chan struct{}, 1)
	})
}

// Kick asks for a sweep of the accounts not swept yet (one was just built),
// so that their bindings get a role cache at once, not a period later.
func (s *Sweeper) Kick() {
	s.init()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// NeedLeaderElection: only the leader sweeps (it is the one reconciling).
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps at once (filling the caches after a start) and then every
// period until ctx ends; a kick sweeps the accounts not swept yet.
func (s *Sweeper) Start(ctx context.Context) error {
	s.init()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		onlyNew := false
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			timer.Reset(wait.Jitter(s.Period, 0.1))
		case <-s.kick:
			onlyNew = true
		}
		start := time.Now()
		drifted, err := s.sweep(ctx, onlyNew)
		if err != nil {
			// The next period tries again; bindings keep their state.
			s.Log.Error(err, "drift sweep failed")
		}
		s.Log.V(1).Info("drift sweep", "enqueued", len(drifted), "took", time.Since(start), "onlyNewAccounts", onlyNew)
	}
}

// sweepTarget is one account as the sweep reads it.
type sweepTarget struct {
	acct     acct
	label    string
	snapshot func(ctx context.Context) (map[string]*role.Observed, error)
	cache    *role.Cache
}

// targets are the accounts to sweep: the operator's own first.
func (s *Sweeper) targets(ctx context.Context) ([]sweepTarget, error) {
	r := s.Reconciler
	out := []sweepTarget{{acct: r.home(), label: "operator", snapshot: s.Snapshot, cache: s.Cache}}
	if s.Accounts == nil {
		return out, nil
	}
	others, err := s.Accounts.Others(ctx)
	for _, a := range others {
		if a.Snapshot != nil {
			out = append(out, sweepTarget{acct: r.acctOf(ctx, a), label: a.Label(), snapshot: a.Snapshot, cache: a.Roles})
		}
	}
	return out, err
}

// Sweep reads every account once and returns the bindings it enqueued.
func (s *Sweeper) Sweep(ctx context.Context) ([]*v1alpha1.PodIdentityBinding, error) {
	return s.sweep(ctx, false)
}

func (s *Sweeper) sweep(ctx context.Context, onlyNew bool) ([]*v1alpha1.PodIdentityBinding, error) {
	s.init()
	targets, err := s.targets(ctx)
	errs := []error{err}
	s.mu.Lock()
	if s.swept == nil {
		s.swept, s.tagged, s.suspects = map[string]bool{}, map[string]map[string][]string{}, map[string]map[string]string{}
	}
	if !onlyNew {
		// Forget what was indexed for accounts no longer swept.
		for k := range s.tagged {
			if !slices.ContainsFunc(targets, func(t sweepTarget) bool { return t.acct.key == k }) {
				delete(s.tagged, k)
				delete(s.suspects, k)
				delete(s.swept, k)
			}
		}
	}
	s.mu.Unlock()
	var drifted []*v1alpha1.PodIdentityBinding
	if !onlyNew {
		// The cluster's associations, once per sweep whatever the accounts.
		d, err := s.associationDrift(ctx)
		if err != nil {
			// Not fatal for the IAM half: the bindings' own resyncs
			// re-read their associations.
			s.Log.Error(err, "listing EKS pod identity associations")
		}
		drifted = append(drifted, d...)
	}
	places := map[string]string{} // namespace -> account key, "?" unknown
	for _, t := range targets {
		s.mu.Lock()
		skip := onlyNew && s.swept[t.acct.key]
		s.mu.Unlock()
		if skip {
			continue
		}
		d, err := s.sweepAccount(ctx, t, places)
		if err != nil {
			errs = append(errs, fmt.Errorf("AWS account %s: %w", t.label, err))
			continue
		}
		drifted = append(drifted, d...)
	}
	for _, b := range drifted {
		select {
		case s.events <- event.GenericEvent{Object: b}:
		case <-ctx.Done():
			return drifted, ctx.Err()
		}
	}
	return drifted, errors.Join(errs...)
}

// associationDrift lists the Pod Identity bindings whose association is
// gone or replaced, from one listing of the cluster's associations (pages
// of 100, whatever the number of bindings).
func (s *Sweeper) associationDrift(ctx context.Context) ([]*v1alpha1.PodIdentityBinding, error) {
	bindings, err := s.bindings(ctx)
	if err != nil {
		return nil, err
	}
	assocs, err := s.associations(ctx, bindings)
	if err != nil || assocs == nil {
		return nil, err
	}
	var drifted []*v1alpha1.PodIdentityBinding
	for _, b := range bindings {
		if b.DeletionTimestamp.IsZero() && b.Status.Identity == v1alpha1.IdentityEKSPodIdentity &&
			assocs[b.Namespace+"/"+b.Status.ServiceAccountName] != b.Status.AssociationID {
			drifted = append(drifted, b)
		}
	}
	return drifted, nil
}

// sweepAccount sweeps one account: its snapshot refills its cache, roles
// tagged for vanished bindings are retired, and every binding wholly in the
// account is planned against the snapshot.
func (s *Sweeper) sweepAccount(ctx context.Context, t sweepTarget, places map[string]string) ([]*v1alpha1.PodIdentityBinding, error) {
	at := time.Now()
	snap, err := t.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if t.cache != nil {
		t.cache.Fill(snap, at)
	}
	r := s.Reconciler
	key := t.acct.key
	bindings, err := s.bindings(ctx)
	if err != nil {
		return nil, err
	}
	tagged := taggedIndex(snap, r.Config.ClusterName)
	live := make(map[string]bool, len(bindings))
	for _, b := range bindings {
		live[b.Namespace+"/"+b.Name] = true
	}
	s.retireVanished(ctx, t, tagged, live, snap)
	// Keep only what status does not already name: almost every binding's
	// one tagged role is its current one (no memory per binding at scale).
	for _, b := range bindings {
		k := b.Namespace + "/" + b.Name
		if names := tagged[k]; len(names) == 1 && names[0] == b.Status.RoleName && b.Status.Account == key {
			delete(tagged, k)
		}
	}
	for k := range tagged {
		if !live[k] {
			delete(tagged, k)
		}
	}
	s.mu.Lock()
	s.tagged[key] = tagged
	s.swept[key] = true
	s.mu.Unlock()
	observe := func(_ context.Context, k string) (*role.Observed, error) {
		account, name := planner.SplitKey(k)
		if account != key {
			return nil, nil // not in this snapshot: planned as absent, so enqueued
		}
		return snap[name], nil
	}
	policies := &sweepPolicies{inner: t.acct.policies, seen: map[string]guard.ManagedPolicy{}}
	var drifted []*v1alpha1.PodIdentityBinding
	for _, b := range bindings {
		if !b.DeletionTimestamp.IsZero() {
			continue // being deleted: its own reconciles are running
		}
		if s.placeOf(ctx, b, places) != key || r.chained(t.acct, b) {
			// Another account's, moving, or reached through a hop role in
			// the cluster's account: re-read each period.
			continue
		}
		in, err := r.gatherWith(ctx, b, t.acct, nil, observe, policies)
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
	return drifted, nil
}

// placeOf is the account a binding is wholly in (the account its namespace
// is served by, and every role status records is there), or "?" when it
// is not (moving, contested, unreachable). places memoises namespaces.
func (s *Sweeper) placeOf(ctx context.Context, b *v1alpha1.PodIdentityBinding, places map[string]string) string {
	key, ok := places[b.Namespace]
	if !ok {
		key = accounts.Home
		if as := s.Reconciler.Accounts; as != nil {
			if a, err := as.For(ctx, b.Namespace); err != nil {
				key = "?"
			} else {
				key = a.Key
			}
		}
		places[b.Namespace] = key
	}
	if !recordedOnlyIn(b, key) {
		return "?"
	}
	return key
}

// retireVanished retires roles tagged for a binding that no longer exists
// (its finalizer was removed without the operator, say): seen in two sweeps
// in a row with the same role ID, such a role becomes a Retain record, and
// is also parked (every permission removed, a trust that trusts no
// ServiceAccount) when a guardrail of its namespace forbids Retain or the
// namespace is gone (a re-created namespace must not inherit it). Nothing
// in status can name it, so only IAM's tags make it findable (invariant I6).
func (s *Sweeper) retireVanished(ctx context.Context, t sweepTarget, tagged map[string][]string, live map[string]bool, snap map[string]*role.Observed) {
	s.mu.Lock()
	prev := s.suspects[t.acct.key]
	suspects := map[string]string{}
	s.suspects[t.acct.key] = suspects
	s.mu.Unlock()
	for key, names := range tagged {
		if live[key] {
			continue
		}
		namespace, _, _ := strings.Cut(key, "/")
		for _, name := range names {
			id := snap[name].ID
			if prev[name] != id {
				suspects[name] = id // retired at the next sweep if still there
				continue
			}
			action, err := s.retireOrphan(ctx, t.acct, namespace, name, snap[name])
			if err != nil {
				suspects[name] = id
				s.Log.Error(err, "retiring a role whose binding is gone", "role", name, "binding", key, "account", t.label)
				continue
			}
			orphansRetired.WithLabelValues(action, t.label).Inc()
			s.Log.Info("retired a role whose binding is gone", "role", name, "binding", key, "action", action, "account", t.label)
		}
	}
}

func (s *Sweeper) retireOrphan(ctx context.Context, a acct, namespace, name string, o *role.Observed) (string, error) {
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
		return "Retained", a.roles.Apply(ctx, role.Desired{Name: name}, role.TagPlan(map[string]string{role.TagRetained: "true"}))
	}
	// Parked as well: no permissions, a trust policy that trusts no
	// ServiceAccount. Not deleted: another cluster misconfigured with this
	// cluster's name could be using it, and a parked role loses nothing.
	d := role.Desired{Name: name, Path: o.Path, Description: o.Description, MaxSessionDuration: o.MaxSessionDuration,
		Trust: planner.ParkedTrust(a.config), Tags: tags}
	return "Parked", a.roles.Apply(ctx, d, role.Diff(d, *o))
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
	if p.Current != planner.Key(b.Status.Account, b.Status.RoleName) || p.Current != "" && p.ServiceAccount != b.Status.ServiceAccountName {
		return true
	}
	for _, a := range append(append([]planner.Action(nil), p.Before...), p.After...) {
		if a.Op != planner.OpUpdate || !a.Diff.Empty() {
			return true
		}
	}
	for key := range p.Owned {
		if !ownsRecorded(b, key) {
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

func ownsRecorded(b *v1alpha1.PodIdentityBinding, key string) bool {
	account, name := planner.SplitKey(key)
	for _, r := range b.Status.OwnedRoles {
		if r.Name == name && r.Account == account {
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

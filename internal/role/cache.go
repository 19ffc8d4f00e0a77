package role

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
)

// Store is what Cache wraps: the role client's reads and writes, plus
// the one GetRole call that confirms a role's identity before a write.
type Store interface {
	// Observe returns nil and no error when the role does not exist.
	Observe(ctx context.Context, name string) (*Observed, error)
	Create(ctx context.Context, d Desired) (arn, id string, err error)
	Apply(ctx context.Context, d Desired, p Plan) error
	Delete(ctx context.Context, name, id string) error
	Get(ctx context.Context, name string) (*Observed, error)
}

// Cache remembers what the operator last observed of each role: from the
// drift sweep's snapshot, from its own reads, and from its own writes
// (Applied). A reconcile then costs no IAM read when nothing changed:
// the second reconcile of a new binding (triggered by the operator's own
// ServiceAccount write) and every reconcile after a restart read the cache.
//
// What it cannot know is what changed in IAM since: that is the sweep's job,
// and entries older than TTL (a sync period and a half) plus twice the last
// sweep's duration are read again. An entry from a snapshot is as old as the
// snapshot's start, and the next snapshot replaces it a sweep, a period and a
// sweep later: with 10,000 roles a sweep takes seconds, and a TTL that
// ignored that would let every entry expire between sweeps. When sweeps stop
// succeeding, entries expire and reconciles read IAM again. Two
// rules keep the cache from ever causing a wrong write: before writing to a
// role known only from the cache, its unique ID is confirmed with GetRole (a
// role deleted and re-created by someone else is never written to), and any
// failed call forgets the role, so the retry reads IAM.
type Cache struct {
	Inner Store
	TTL   time.Duration
	// FirstFillWait bounds how long a reconcile waits for the first sweep
	// after a start (so a restart reads no role one by one).
	FirstFillWait time.Duration
	// Clock tells the time (tests inject a fake one); nil is the real clock.
	Clock clock.Clock
	// Account labels the cache's metrics: "operator" (when empty) or the
	// AWS account ID of a PodIdentityAccount.
	Account string

	mu      sync.Mutex
	entries map[string]cached
	// deleted remembers when the operator deleted a role, so that a
	// snapshot taken before the delete does not bring it back (Fill).
	deleted map[string]time.Time
	took    time.Duration // the last sweep's duration (Fill's at to Fill)
	// filledAt is when the last snapshot began; forgotten are the roles
	// forgotten since (after a failed call), which the snapshot may list.
	filledAt  time.Time
	forgotten map[string]bool
	filled    chan struct{}
	once      sync.Once
	started   time.Time
}

type cached struct {
	obs *Observed
	at  time.Time // when IAM said so (read, snapshot or own write)
}

// confirmWindow: an entry younger than this is as good as a read just before
// the write (the same race exists between any read and write).
const confirmWindow = 5 * time.Second

func (c *Cache) init() {
	c.once.Do(func() {
		c.entries = map[string]cached{}
		c.deleted = map[string]time.Time{}
		c.filled = make(chan struct{})
		if c.Clock == nil {
			c.Clock = clock.RealClock{}
		}
		c.started = c.Clock.Now()
	})
}

// Fill replaces the cache with a sweep's snapshot taken from at on, except
// for entries the operator read or wrote after at. Roles absent from both
// are forgotten (a later reconcile reads them directly). A role the snapshot has
// not listed yet (Unlisted) keeps the description and maximum session
// duration the cache knew for the same role ID, from its own write.
func (c *Cache) Fill(snap map[string]*Observed, at time.Time) {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.entries
	c.took = c.Clock.Since(at)
	c.filledAt, c.forgotten = at, map[string]bool{}
	c.entries = make(map[string]cached, len(snap))
	for name, o := range snap {
		if gone, ok := c.deleted[name]; ok && gone.After(at) {
			continue // deleted by the operator after the snapshot began
		}
		if prev, ok := old[name]; ok && o.Unlisted && !prev.obs.Unlisted && prev.obs.ID == o.ID {
			known := *o
			known.Description, known.MaxSessionDuration, known.Unlisted = prev.obs.Description, prev.obs.MaxSessionDuration, false
			o = &known
		}
		c.entries[name] = cached{obs: o, at: at}
	}
	// What the operator read or wrote after the snapshot began is newer than
	// the snapshot: keep it (a role created during a long sweep is then not
	// read again by its next reconcile).
	for name, prev := range old {
		if prev.at.After(at) {
			c.entries[name] = prev
		}
	}
	for name, gone := range c.deleted {
		if !gone.After(at) {
			delete(c.deleted, name) // the snapshot already knows
		}
	}
	select {
	case <-c.filled:
	default:
		close(c.filled)
	}
}

func (c *Cache) get(name string) (*Observed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	// A reconcile never plans with an Unlisted role: it would not see a
	// change of the binding's description or maximum session duration.
	result := "hit"
	switch {
	case !ok:
		result = "miss"
	case c.Clock.Since(e.at) > c.TTL+2*c.took:
		result = "expired"
	case e.obs.Unlisted:
		result = "unlisted"
	}
	roleCacheLookups.WithLabelValues(result, cmp.Or(c.Account, "operator")).Inc()
	if result != "hit" {
		return nil, false
	}
	return e.obs, true
}

// Absent reports whether the role is known not to exist without reading
// IAM: the last sweep's snapshot is fresh (as Observe judges entries) and
// did not list it, and the operator has neither read, written nor forgotten
// it since. It is only ever asked about a name to create (Reconciler.gather):
// if the role exists after all, CreateRole fails, the name is forgotten and
// the retry reads it.
func (c *Cache) Absent(name string) bool {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.filledAt.IsZero() || c.Clock.Since(c.filledAt) > c.TTL+2*c.took || c.forgotten[name] {
		return false
	}
	_, known := c.entries[name]
	return !known
}

// Known returns what the cache holds of a role, however old (for
// Snapshotter.Known), or nil.
func (c *Cache) Known(name string) *Observed {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[name].obs
}

func (c *Cache) put(name string, o *Observed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[name] = cached{obs: o, at: c.Clock.Now()}
}

func (c *Cache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
	if c.forgotten != nil {
		c.forgotten[name] = true
	}
}

// Observe returns the cached role when fresh, otherwise reads it. A role that
// does not exist is never cached.
func (c *Cache) Observe(ctx context.Context, name string) (*Observed, error) {
	c.init()
	if wait := c.FirstFillWait - c.Clock.Since(c.started); wait > 0 {
		select {
		case <-c.filled:
		case <-c.Clock.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if o, ok := c.get(name); ok {
		return o, nil
	}
	o, err := c.Inner.Observe(ctx, name)
	if err != nil {
		c.forget(name)
		return nil, err
	}
	if o != nil {
		c.put(name, o)
	}
	return o, nil
}

// Create creates the role and remembers it as created.
func (c *Cache) Create(ctx context.Context, d Desired) (string, string, error) {
	c.init()
	arn, id, err := c.Inner.Create(ctx, d)
	if err != nil {
		c.forget(d.Name)
		return arn, id, err
	}
	c.put(d.Name, Created(d, arn, id))
	return arn, id, nil
}

// Apply confirms the role's identity when it is known only from the cache,
// writes, and remembers the result.
func (c *Cache) Apply(ctx context.Context, d Desired, p Plan) error {
	c.init()
	c.mu.Lock()
	e, ok := c.entries[d.Name]
	c.mu.Unlock()
	if ok && c.Clock.Since(e.at) > confirmWindow {
		live, err := c.Inner.Get(ctx, d.Name)
		if err != nil {
			c.forget(d.Name)
			return err
		}
		if live == nil || live.ID != e.obs.ID {
			c.forget(d.Name)
			return awsiam.AsRetryable(fmt.Errorf("role %s changed in IAM since it was last read; reading it again", d.Name))
		}
	}
	if err := c.Inner.Apply(ctx, d, p); err != nil {
		c.forget(d.Name)
		return err
	}
	if ok {
		c.put(d.Name, Applied(d, *e.obs, p))
	} else {
		c.forget(d.Name)
	}
	return nil
}

// Delete deletes the role the plan was made against: when the cache's
// entry is not a fresh observation of that role ID, the ID is confirmed with
// GetRole first (a role deleted and re-created by someone else is never
// deleted). The role is then forgotten, and a snapshot that began before the
// delete does not bring it back.
func (c *Cache) Delete(ctx context.Context, name, id string) error {
	c.init()
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if !ok || e.obs.ID != id || c.Clock.Since(e.at) > confirmWindow {
		live, err := c.Inner.Get(ctx, name)
		if err != nil {
			c.forget(name)
			return err
		}
		if live == nil {
			c.forget(name)
			return nil // already gone
		}
		if live.ID != id {
			c.forget(name)
			return awsiam.AsRetryable(fmt.Errorf("role %s is not the role %s the plan was made against; reading it again", name, id))
		}
	}
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.entries, name)
		c.deleted[name] = c.Clock.Now()
	}()
	return c.Inner.Delete(ctx, name, id)
}

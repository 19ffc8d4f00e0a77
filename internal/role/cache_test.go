package role

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// countingRoles is a RoleReader that counts reads and returns a fixed
type countingRoles struct {
	reads   int
	role    *Observed
	deleted []string
}

func (c *countingRoles) Observe(context.Context, string) (*Observed, error) {
	c.reads++
	return c.role, nil
}

func (c *countingRoles) Get(ctx context.Context, name string) (*Observed, error) {
	return c.Observe(ctx, name)
}

func (c *countingRoles) Create(context.Context, Desired) (string, string, error) {
	return "arn", "ID1", nil
}

func (c *countingRoles) Apply(context.Context, Desired, Plan) error { return nil }

func (c *countingRoles) Delete(_ context.Context, name, _ string) error {
	c.deleted = append(c.deleted, name)
	return nil
}

// Issue 17 defect 10: a delete goes only to the role ID it was planned
// against, and a snapshot that began before a delete does not bring the
// role back.
func TestRoleCacheDeleteConfirmsTheRoleID(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &Observed{ID: "RECREATED"}}
	c := &Cache{Inner: inner, TTL: time.Hour}
	c.Fill(map[string]*Observed{"r": {ID: "PLANNED"}}, time.Now().Add(-time.Minute))
	err := c.Delete(ctx, "r", "PLANNED")
	if err == nil || len(inner.deleted) != 0 {
		t.Fatalf("deleted a role re-created under the same name: err %v, deleted %v", err, inner.deleted)
	}
	if inner.reads != 1 {
		t.Errorf("confirmation reads = %d, want 1", inner.reads)
	}

	inner.role = &Observed{ID: "PLANNED"}
	before := time.Now()
	if err := c.Delete(ctx, "r", "PLANNED"); err != nil || len(inner.deleted) != 1 {
		t.Fatalf("delete of the planned role: err %v, deleted %v", err, inner.deleted)
	}
	c.Fill(map[string]*Observed{"r": {ID: "PLANNED"}}, before.Add(-time.Second))
	if o := c.Known("r"); o != nil {
		t.Errorf("a snapshot older than the delete brought the role back: %+v", o)
	}
	c.Fill(map[string]*Observed{"r": {ID: "NEW"}}, time.Now())
	if o := c.Known("r"); o == nil || o.ID != "NEW" {
		t.Errorf("a snapshot newer than the delete is ignored: %+v", o)
	}
}

// A snapshot that has not listed a role yet (Unlisted) takes the description
// and session duration the cache knew of the same role; a reconcile never
// plans with an Unlisted role, and a re-created role never inherits them.
func TestRoleCacheUnlistedRoles(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &Observed{ID: "ID9", Description: "read"}}
	c := &Cache{Inner: inner, TTL: time.Hour}
	c.Fill(map[string]*Observed{"known": {ID: "ID1", Description: "mine", MaxSessionDuration: 7200}}, time.Now())
	c.Fill(map[string]*Observed{
		"known":     {ID: "ID1", Unlisted: true},
		"recreated": {ID: "ID2", Unlisted: true},
	}, time.Now())
	o, err := c.Observe(ctx, "known")
	if err != nil || o.Unlisted || o.Description != "mine" || o.MaxSessionDuration != 7200 || inner.reads != 0 {
		t.Errorf("known role: %+v, %d reads, %v", o, inner.reads, err)
	}
	c.Fill(map[string]*Observed{"known": {ID: "ID3", Unlisted: true}}, time.Now())
	if o, _ := c.Observe(ctx, "known"); o.Description != "read" || inner.reads != 1 {
		t.Errorf("a role re-created under the name took the old values: %+v, %d reads", o, inner.reads)
	}
	if o, _ := c.Observe(ctx, "recreated"); o.Unlisted || inner.reads != 2 {
		t.Errorf("an Unlisted role was planned with: %+v, %d reads", o, inner.reads)
	}
}

// A snapshot replaces what the cache knew before it began, never what the
// operator read or wrote while it ran.
func TestRoleCacheFillKeepsNewerEntries(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &Cache{Inner: inner, TTL: time.Hour, Clock: clk}
	c.Fill(map[string]*Observed{"old": {ID: "A"}, "changed": {ID: "B", Description: "before"}}, clk.Now())
	snapshotStart := clk.Now()
	clk.Step(time.Millisecond)
	if _, _, err := c.Create(ctx, Desired{Name: "created-during-sweep"}); err != nil {
		t.Fatal(err)
	}
	c.Fill(map[string]*Observed{"changed": {ID: "B", Description: "after"}}, snapshotStart)
	for name, want := range map[string]string{"created-during-sweep": "ID1", "changed": "B"} {
		o, err := c.Observe(ctx, name)
		if err != nil || o.ID != want {
			t.Errorf("%s: %+v %v", name, o, err)
		}
	}
	if o, _ := c.Observe(ctx, "changed"); o.Description != "after" {
		t.Errorf("the snapshot did not replace an older entry: %+v", o)
	}
	if inner.reads != 0 {
		t.Errorf("%d reads", inner.reads)
	}
	if o, _ := c.Observe(ctx, "old"); o.ID != "read" || inner.reads != 1 {
		t.Errorf("a role absent from the snapshot was kept: %+v", o)
	}
}

// Entries from a snapshot stay usable until the next sweep is overdue, however
// long sweeps take; then the role is read again.
func TestRoleCacheTTLAllowsForSlowSweeps(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &Cache{Inner: inner, TTL: 300 * time.Millisecond, Clock: clk}
	// A sweep that took twice the TTL.
	c.Fill(map[string]*Observed{"r": {ID: "snap"}}, clk.Now().Add(-600*time.Millisecond))
	if o, _ := c.Observe(ctx, "r"); o.ID != "snap" || inner.reads != 0 {
		t.Errorf("an entry expired as the sweep delivered it: %+v, %d reads", o, inner.reads)
	}
	clk.Step(800 * time.Millisecond) // 1.4 s since the snapshot began, just inside TTL + 2 * 600ms = 1.5 s
	if o, _ := c.Observe(ctx, "r"); o.ID != "snap" || inner.reads != 0 {
		t.Errorf("an entry expired before the next sweep was overdue: %+v, %d reads", o, inner.reads)
	}
	clk.Step(200 * time.Millisecond) // past TTL + 2 * 600ms since the snapshot began
	if o, _ := c.Observe(ctx, "r"); o.ID != "read" || inner.reads != 1 {
		t.Errorf("an entry outlived an overdue sweep: %+v, %d reads", o, inner.reads)
	}
}

// Absent answers only from a fresh snapshot, and never for a role the
// operator has seen or lost track of since.
func TestRoleCacheAbsent(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &Cache{Inner: inner, TTL: time.Minute, Clock: clk}
	if c.Absent("new") {
		t.Fatal("absent before any snapshot")
	}
	c.Fill(map[string]*Observed{"listed": {ID: "A"}}, clk.Now())
	if !c.Absent("new") || c.Absent("listed") {
		t.Errorf("new: %v, listed: %v", c.Absent("new"), c.Absent("listed"))
	}
	if _, err := c.Observe(ctx, "read-since"); err != nil || c.Absent("read-since") {
		t.Errorf("a role read since the snapshot is absent: %v", err)
	}
	c.forget("lost")
	if c.Absent("lost") {
		t.Errorf("a role forgotten after a failed call is absent")
	}
	clk.Step(2 * time.Minute)
	if c.Absent("new") {
		t.Errorf("absent from an expired snapshot")
	}
	c.Fill(map[string]*Observed{}, clk.Now())
	if !c.Absent("lost") {
		t.Errorf("a new snapshot does not settle a forgotten role")
	}
}

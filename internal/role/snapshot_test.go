package role

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// fakeAccount serves GetAccountAuthorizationDetails and ListRoles from
// memory, in pages of pageSize ordered by name, as IAM does, and counts the
// calls.
type fakeAccount struct {
	pageSize int
	roles    map[string]*types.Role // by name
	calls    map[string]int
	// badMarkers are markers ListRoles refuses (expired).
	badMarkers map[string]bool
	// failListing fails the ListRoles calls with these numbers (1-based).
	failListing map[int]bool
}

func newFakeAccount(pageSize int) *fakeAccount {
	return &fakeAccount{pageSize: pageSize, roles: map[string]*types.Role{}, calls: map[string]int{}, badMarkers: map[string]bool{}}
}

func (f *fakeAccount) add(name, path, description string, id int) {
	f.roles[name] = &types.Role{RoleName: aws.String(name), Path: aws.String(path), RoleId: aws.String("AROA" + strconv.Itoa(id)),
		Arn: aws.String("arn:aws:iam::123456789012:role" + path + name), Description: aws.String(description), MaxSessionDuration: aws.Int32(3600),
		AssumeRolePolicyDocument: aws.String("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D")}
}

func (f *fakeAccount) sorted(prefix string) []*types.Role {
	var out []*types.Role
	for _, r := range f.roles {
		if len(aws.ToString(r.Path)) >= len(prefix) && aws.ToString(r.Path)[:len(prefix)] == prefix {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return aws.ToString(out[i].RoleName) < aws.ToString(out[j].RoleName) })
	return out
}

// page returns the page after marker (a role name: the last one served).
func (f *fakeAccount) page(all []*types.Role, marker *string) ([]*types.Role, *string) {
	start := 0
	if marker != nil {
		for start < len(all) && aws.ToString(all[start].RoleName) <= *marker {
			start++
		}
	}
	end := min(start+f.pageSize, len(all))
	if end == len(all) {
		return all[start:end], nil
	}
	return all[start:end], all[end-1].RoleName
}

func (f *fakeAccount) GetAccountAuthorizationDetails(_ context.Context, in *iam.GetAccountAuthorizationDetailsInput, _ ...func(*iam.Options)) (*iam.GetAccountAuthorizationDetailsOutput, error) {
	f.calls["GetAccountAuthorizationDetails"]++
	roles, next := f.page(f.sorted("/"), in.Marker)
	out := &iam.GetAccountAuthorizationDetailsOutput{IsTruncated: next != nil, Marker: next}
	for _, r := range roles {
		out.RoleDetailList = append(out.RoleDetailList, types.RoleDetail{RoleName: r.RoleName, RoleId: r.RoleId, Arn: r.Arn, Path: r.Path,
			AssumeRolePolicyDocument: r.AssumeRolePolicyDocument})
	}
	return out, nil
}

func (f *fakeAccount) ListRoles(_ context.Context, in *iam.ListRolesInput, _ ...func(*iam.Options)) (*iam.ListRolesOutput, error) {
	f.calls["ListRoles"]++
	if f.failListing[f.calls["ListRoles"]] {
		return nil, errors.New("ServiceFailure")
	}
	if in.Marker != nil && f.badMarkers[*in.Marker] {
		return nil, errors.New("InvalidInput: marker expired")
	}
	roles, next := f.page(f.sorted(aws.ToString(in.PathPrefix)), in.Marker)
	out := &iam.ListRolesOutput{IsTruncated: next != nil, Marker: next}
	for _, r := range roles {
		out.Roles = append(out.Roles, *r)
	}
	return out, nil
}

func TestSnapshotterBoundsListRolesPages(t *testing.T) {
	ctx := context.Background()
	f := newFakeAccount(10)
	for i := range 95 { // 10 pages under the path
		f.add(fmt.Sprintf("pi-%03d", i), "/podidentity/", "desc "+strconv.Itoa(i), i)
	}
	for i := range 40 { // other roles in the account
		f.add(fmt.Sprintf("other-%03d", i), "/", "", 1000+i)
	}
	s := &Snapshotter{API: f, Path: "/podidentity/", ListPages: 3}

	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != 95 || f.calls["ListRoles"] != 10 || f.calls["GetAccountAuthorizationDetails"] != 14 {
		t.Fatalf("first snapshot: %d roles, calls %v; want 95 roles, every page of both", len(snap), f.calls)
	}
	for name, o := range snap {
		if o.Unlisted || o.Description == "" || o.MaxSessionDuration != 3600 {
			t.Errorf("%s after the first snapshot: %+v", name, o)
		}
	}

	// Later snapshots: every details page, at most 3 listing pages; the
	// listing continues, so a description change shows within 4 snapshots.
	f.roles["pi-094"].Description = aws.String("changed")
	seen := -1
	for n := 1; n <= 4; n++ {
		f.calls = map[string]int{}
		snap, err = s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.calls["ListRoles"] > 3 || f.calls["GetAccountAuthorizationDetails"] != 14 {
			t.Fatalf("snapshot %d: calls %v", n, f.calls)
		}
		if got := snap["pi-094"].Description; got == "changed" && seen < 0 {
			seen = n
		} else if got != "changed" && got != "desc 94" {
			t.Fatalf("snapshot %d: description %q", n, got)
		}
		for name, o := range snap {
			if o.Unlisted {
				t.Errorf("snapshot %d: %s unlisted", n, name)
			}
		}
	}
	if seen < 0 {
		t.Fatal("the changed description was never seen")
	}

	// A role re-created under the same name is a new role: it never gets
	// the old one's values, and is Unlisted until its page comes round.
	// Both are on the last page; the previous loop ended the listing there,
	// so the next snapshot lists from the start.
	if s.marker != nil {
		t.Fatal("the listing did not complete its cycle")
	}
	delete(f.roles, "pi-090")
	f.add("pi-090", "/podidentity/", "new", 5000)
	f.add("pi-0905", "/podidentity/", "brand new", 5001)
	unlistedSeen := false
	for range 4 {
		snap, err = s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"pi-090", "pi-0905"} {
			o := snap[name]
			switch {
			case o.Unlisted:
				unlistedSeen = true
				if o.Description != "" {
					t.Errorf("%s is Unlisted with description %q", name, o.Description)
				}
			case o.Description != aws.ToString(f.roles[name].Description):
				t.Errorf("%s: description %q", name, o.Description)
			}
		}
	}
	if !unlistedSeen || snap["pi-090"].Unlisted || snap["pi-0905"].Unlisted {
		t.Errorf("new roles: unlisted at first %v, listed after a full cycle %v", unlistedSeen, !snap["pi-090"].Unlisted && !snap["pi-0905"].Unlisted)
	}
	if _, ok := s.listed["AROA90"]; ok {
		t.Error("the deleted role's listing is kept")
	}

	// A marker from an earlier snapshot that IAM no longer accepts: the
	// listing starts over instead of failing the sweep.
	if s.marker == nil {
		_, _ = s.Snapshot(ctx)
	}
	f.badMarkers[*s.marker] = true
	f.calls = map[string]int{}
	if _, err := s.Snapshot(ctx); err != nil {
		t.Fatalf("expired marker: %v", err)
	}
	if f.calls["ListRoles"] != 4 { // the refused call, then 3 pages from the start
		t.Errorf("after an expired marker: %v", f.calls)
	}

	// ListPages 0: every page, every time.
	f.calls, f.badMarkers = map[string]int{}, map[string]bool{}
	if _, err := (&Snapshotter{API: f, Path: "/podidentity/"}).Snapshot(ctx); err != nil || f.calls["ListRoles"] != 10 {
		t.Errorf("unbounded: %v %v", err, f.calls)
	}
}

func TestDiffLeavesUnlistedFieldsAlone(t *testing.T) {
	d := Desired{Description: "wanted", MaxSessionDuration: 3600}
	o := Observed{Unlisted: true}
	if p := Diff(d, o); p.UpdateRole {
		t.Errorf("Unlisted role: %v", p.Changes())
	}
	o.Unlisted = false
	if p := Diff(d, o); !p.UpdateRole {
		t.Error("a listed role with another description is not updated")
	}
}

// A first listing that fails halfway is done again in full by the next
// snapshot, instead of leaving the roles it did not reach Unlisted.
func TestSnapshotterRepeatsAFailedFirstListing(t *testing.T) {
	ctx := context.Background()
	f := newFakeAccount(10)
	for i := range 95 {
		f.add(fmt.Sprintf("pi-%03d", i), "/podidentity/", "desc", i)
	}
	// The second page fails, and so does starting over.
	f.failListing = map[int]bool{2: true, 3: true}
	s := &Snapshotter{API: f, Path: "/podidentity/", ListPages: 3}
	if _, err := s.Snapshot(ctx); err == nil {
		t.Fatal("the failed listing was not reported")
	}
	f.calls, f.failListing = map[string]int{}, nil
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.calls["ListRoles"] != 10 {
		t.Errorf("the snapshot after a failed first listing read %d ListRoles pages, want all 10", f.calls["ListRoles"])
	}
	for name, o := range snap {
		if o.Unlisted {
			t.Errorf("%s is Unlisted", name)
		}
	}
}

// A role that has not changed since it was last known is returned as the
// known object (so a sweep never holds two copies of every role); a changed
// one is decoded anew, and the snapshot is the same either way.
func TestSnapshotterReusesUnchangedRoles(t *testing.T) {
	ctx := context.Background()
	f := newFakeAccount(2)
	for i := range 5 {
		f.add(fmt.Sprintf("r%d", i), "/podidentity/", "d", i)
	}
	plain, err := (&Snapshotter{API: f, Path: "/podidentity/"}).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]*Observed{}
	for name, o := range plain {
		known[name] = o
	}
	f.roles["r3"].Description = aws.String("changed")
	f.roles["r4"].AssumeRolePolicyDocument = aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`)
	s := &Snapshotter{API: f, Path: "/podidentity/", Known: func(name string) *Observed { return known[name] }}
	got, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := (&Snapshotter{API: f, Path: "/podidentity/"}).Snapshot(ctx)
	for name, o := range got {
		if reused := o == known[name]; reused != (name != "r3" && name != "r4") {
			t.Errorf("%s: reused %v", name, reused)
		}
		if !o.Same(fresh[name]) {
			t.Errorf("%s: %+v, without reuse %+v", name, o, fresh[name])
		}
	}
	if got["r3"].Description != "changed" || got["r4"].Trust == plain["r4"].Trust {
		t.Errorf("changes lost: %+v %+v", got["r3"], got["r4"])
	}
}

// Roles observed one by one from IAM responses share the strings every
// role repeats (path, boundary, tag keys, the cluster and namespace tag
// values), and keep their own where they differ.
func TestObservedRolesShareRepeatedStrings(t *testing.T) {
	detail := func(i int) types.RoleDetail {
		s := func(format string, args ...any) *string { return aws.String(fmt.Sprintf(format, args...)) }
		return types.RoleDetail{
			Arn: s("arn:aws:iam::123456789012:role/pi/r-%d", i), RoleId: s("AROA%d", i), Path: s("/pi/"),
			AssumeRolePolicyDocument: s(`{"Version":"2012-10-17","Statement":[]}`),
			PermissionsBoundary:      &types.AttachedPermissionsBoundary{PermissionsBoundaryArn: s("arn:aws:iam::123456789012:policy/boundary")},
			Tags: []types.Tag{
				{Key: s(TagCluster), Value: s("prod")}, {Key: s(TagNamespace), Value: s("team-a")},
				{Key: s(TagBinding), Value: s("app-%d", i)},
			},
		}
	}
	a, b := fromDetail(detail(1)), fromDetail(detail(2))
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(a.Path, b.Path) || !same(a.Boundary, b.Boundary) ||
		!same(a.Tags[TagCluster], b.Tags[TagCluster]) || !same(a.Tags[TagNamespace], b.Tags[TagNamespace]) {
		t.Error("repeated strings are not shared")
	}
	for k := range a.Tags {
		for k2 := range b.Tags {
			if k == k2 && !same(k, k2) {
				t.Errorf("tag key %s not shared", k)
			}
		}
	}
	if a.Tags[TagBinding] != "app-1" || b.Tags[TagBinding] != "app-2" || a.Path != "/pi/" || a.Tags[TagCluster] != "prod" {
		t.Errorf("values changed: %v %v", a.Tags, b.Tags)
	}
}

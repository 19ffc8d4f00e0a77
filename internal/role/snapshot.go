package role

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// PageSize is the largest page IAM returns for the listing calls.
const PageSize = 1000

// SnapshotAPI is what Snapshot calls.
type SnapshotAPI interface {
	GetAccountAuthorizationDetails(ctx context.Context, in *iam.GetAccountAuthorizationDetailsInput, optFns ...func(*iam.Options)) (*iam.GetAccountAuthorizationDetailsOutput, error)
	ListRoles(ctx context.Context, in *iam.ListRolesInput, optFns ...func(*iam.Options)) (*iam.ListRolesOutput, error)
}

// Snapshot reads every role under path with what Observe reads of each, in
// ceil(roles in the account / 1000) GetAccountAuthorizationDetails pages
// (trust, inline policies, attachments, boundary, tags) plus
// ceil(roles under path / 1000) ListRoles pages (description and maximum
// session duration, which the first call does not return), instead of four
// calls per role. Pagination follows IsTruncated and Marker.
func Snapshot(ctx context.Context, api SnapshotAPI, path string) (map[string]*Observed, error) {
	return (&Snapshotter{API: api, Path: path}).Snapshot(ctx)
}

// Snapshotter takes one snapshot after another, as the drift sweep does.
// Each reads every GetAccountAuthorizationDetails page, but at most
// ListPages ListRoles pages (0: all), continuing where the previous snapshot
// stopped, so that a sweep costs ceil(roles in the account / 1000) +
// ListPages calls however many roles are under the path. The first snapshot
// lists every page. Roles not listed this time carry the description and
// maximum session duration of their last listing (matched by role ID, so a
// re-created role never inherits them); a role not listed since it appeared
// is Unlisted. With more than ListPages*1000 roles under the path, a change
// of description or maximum session duration is seen within
// ceil(pages / ListPages) snapshots; trust, permissions, boundary and tags
// are read in full every time.
type Snapshotter struct {
	API       SnapshotAPI
	Path      string
	ListPages int
	// Known, when set, returns what is already known of a role (the role
	// cache). A role that has not changed is then returned as that same
	// object, and the one just decoded is garbage at once: the operator
	// never holds two copies of every role while a sweep runs.
	Known func(name string) *Observed

	mu sync.Mutex
	// marker is where the next listing continues (nil: at the start).
	marker *string
	// listed holds each role's last listed values by role ID.
	listed map[string]listedRole
}

type listedRole struct {
	description string
	maxSession  int32
}

// Snapshot reads the roles under the path.
func (s *Snapshotter) Snapshot(ctx context.Context) (map[string]*Observed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Listed first, so each role is complete as its page is decoded.
	if err := s.list(ctx); err != nil {
		return nil, err
	}
	out := map[string]*Observed{}
	ids := map[string]bool{}
	details := iam.NewGetAccountAuthorizationDetailsPaginator(s.API, &iam.GetAccountAuthorizationDetailsInput{
		Filter: []types.EntityType{types.EntityTypeRole}, MaxItems: aws.Int32(PageSize)})
	for details.HasMorePages() {
		page, err := details.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading account authorization details: %w", err)
		}
		for _, r := range page.RoleDetailList {
			if !strings.HasPrefix(aws.ToString(r.Path), s.Path) {
				continue
			}
			name, o := aws.ToString(r.RoleName), fromDetail(r)
			ids[o.ID] = true
			if l, ok := s.listed[o.ID]; ok {
				o.Description, o.MaxSessionDuration = l.description, l.maxSession
			} else {
				o.Unlisted = true
			}
			if s.Known != nil {
				if k := s.Known(name); k != nil && k.Same(o) {
					o = k
				}
			}
			out[name] = o
		}
	}
	for id := range s.listed {
		if !ids[id] {
			delete(s.listed, id) // deleted since: do not keep it forever
		}
	}
	return out, nil
}

// list reads the next ListPages pages of ListRoles into s.listed: every
// page the first time (and after a first listing failed), or when ListPages
// is 0.
func (s *Snapshotter) list(ctx context.Context) error {
	full := s.listed == nil || s.ListPages <= 0
	if full {
		s.listed, s.marker = map[string]listedRole{}, nil
	}
	startedOver := false
	for pages := 0; full || pages < s.ListPages; {
		page, err := s.API.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(s.Path), MaxItems: aws.Int32(PageSize), Marker: s.marker})
		if err != nil && s.marker != nil && !startedOver {
			// An earlier sweep's marker may no longer be valid: start over once.
			s.marker, startedOver = nil, true
			continue
		}
		if err != nil {
			s.marker = nil
			if full {
				s.listed = nil // the next snapshot lists every page again
			}
			return fmt.Errorf("listing roles under %s: %w", s.Path, err)
		}
		pages++
		for _, r := range page.Roles {
			s.listed[aws.ToString(r.RoleId)] = listedRole{description: aws.ToString(r.Description), maxSession: aws.ToInt32(r.MaxSessionDuration)}
		}
		if !page.IsTruncated || page.Marker == nil {
			s.marker = nil // the next snapshot starts over
			return nil
		}
		s.marker = page.Marker
	}
	return nil
}

func fromDetail(r types.RoleDetail) *Observed {
	o := newObserved(r.Arn, r.RoleId, r.Path, r.AssumeRolePolicyDocument, r.PermissionsBoundary, r.Tags)
	for _, p := range r.RolePolicyList {
		o.addInline(aws.ToString(p.PolicyName), aws.ToString(p.PolicyDocument))
	}
	for _, p := range r.AttachedManagedPolicies {
		o.ManagedPolicies = append(o.ManagedPolicies, aws.ToString(p.PolicyArn))
	}
	sort.Strings(o.ManagedPolicies)
	return o
}

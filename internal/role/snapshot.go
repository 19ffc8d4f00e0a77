package role

import (
	"context"
	"fmt"
	"sort"
	"strings"

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
	out := map[string]*Observed{}
	details := iam.NewGetAccountAuthorizationDetailsPaginator(api, &iam.GetAccountAuthorizationDetailsInput{
		Filter: []types.EntityType{types.EntityTypeRole}, MaxItems: aws.Int32(PageSize)})
	for details.HasMorePages() {
		page, err := details.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading account authorization details: %w", err)
		}
		for _, r := range page.RoleDetailList {
			if strings.HasPrefix(aws.ToString(r.Path), path) {
				out[aws.ToString(r.RoleName)] = fromDetail(r)
			}
		}
	}
	roles := iam.NewListRolesPaginator(api, &iam.ListRolesInput{PathPrefix: aws.String(path), MaxItems: aws.Int32(PageSize)})
	for roles.HasMorePages() {
		page, err := roles.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing roles under %s: %w", path, err)
		}
		for _, r := range page.Roles {
			if o := out[aws.ToString(r.RoleName)]; o != nil {
				o.Description, o.MaxSessionDuration = aws.ToString(r.Description), aws.ToInt32(r.MaxSessionDuration)
			}
		}
	}
	return out, nil
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

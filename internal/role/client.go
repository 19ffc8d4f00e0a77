package role

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/intern"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

// Client observes, creates, updates and deletes roles through the IAM API.
type Client struct {
	IAM awsiam.API
}

// Get reads a role alone (one GetRole call): enough to check ownership. It
// returns nil and no error when the role does not exist.
func (c Client) Get(ctx context.Context, name string) (*Observed, error) {
	out, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if awsiam.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting role %s: %w", name, err)
	}
	r := out.Role
	o := newObserved(r.Arn, r.RoleId, r.Path, r.AssumeRolePolicyDocument, r.PermissionsBoundary, r.Tags)
	o.Description, o.MaxSessionDuration = aws.ToString(r.Description), aws.ToInt32(r.MaxSessionDuration)
	return o, nil
}

// newObserved is the part of a role that GetRole and
// GetAccountAuthorizationDetails both return, parsed.
func newObserved(arn, id, path, trust *string, boundary *types.AttachedPermissionsBoundary, tags []types.Tag) *Observed {
	o := &Observed{
		ARN:  aws.ToString(arn),
		ID:   aws.ToString(id),
		Path: intern.String(aws.ToString(path)),
		Tags: make(map[string]string, len(tags)),
	}
	if doc, err := policy.Parse(aws.ToString(trust)); err != nil {
		o.TrustErr = err
	} else {
		o.Trust = doc.Fingerprint()
	}
	if boundary != nil {
		o.Boundary = intern.String(aws.ToString(boundary.PermissionsBoundaryArn))
	}
	for _, t := range tags {
		// Keys, and the values of the ownership tags that many roles share,
		// are held once (every role in the cache has them).
		k, v := intern.String(aws.ToString(t.Key)), aws.ToString(t.Value)
		if k == TagCluster || k == TagNamespace || k == TagRetained {
			v = intern.String(v)
		}
		o.Tags[k] = v
	}
	return o
}

// addInline records an inline policy document as IAM returned it: kept
// (InlineOf), or its parse error.
func (o *Observed) addInline(name, doc string) {
	parsed, err := policy.Parse(doc)
	if err != nil {
		if o.InlineErr == nil {
			o.InlineErr = map[string]error{}
		}
		o.InlineErr[name] = err
		return
	}
	o.Inline = o.Inline.Set(name, InlineOf(parsed))
}

// Observe reads a role, its inline policies and its attachments. It returns
// nil and no error when the role does not exist.
func (c Client) Observe(ctx context.Context, name string) (*Observed, error) {
	o, err := c.Get(ctx, name)
	if o == nil || err != nil {
		return nil, err
	}
	names, err := c.inlinePolicyNames(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, pn := range names {
		p, err := c.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(pn)})
		if awsiam.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getting inline policy %s of role %s: %w", pn, name, err)
		}
		o.addInline(pn, aws.ToString(p.PolicyDocument))
	}

	o.ManagedPolicies, err = c.attachedPolicies(ctx, name)
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (c Client) inlinePolicyNames(ctx context.Context, role string) ([]string, error) {
	var names []string
	pages := iam.NewListRolePoliciesPaginator(c.IAM, &iam.ListRolePoliciesInput{RoleName: aws.String(role)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing inline policies of role %s: %w", role, err)
		}
		names = append(names, page.PolicyNames...)
	}
	return names, nil
}

func (c Client) attachedPolicies(ctx context.Context, role string) ([]string, error) {
	var arns []string
	pages := iam.NewListAttachedRolePoliciesPaginator(c.IAM, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing attached policies of role %s: %w", role, err)
		}
		for _, p := range page.AttachedPolicies {
			arns = append(arns, aws.ToString(p.PolicyArn))
		}
	}
	sort.Strings(arns)
	return arns, nil
}

// Create creates the role in one CreateRole call (path, trust policy, max
// session duration, boundary and tags), then writes its permissions. It
// returns the role ARN and unique ID. A crash between the calls is repaired by the next
// Observe/Diff, since the role is found by its deterministic name.
func (c Client) Create(ctx context.Context, d Desired) (arn, id string, err error) {
	trust, err := d.Trust.JSON()
	if err != nil {
		return "", "", err
	}
	in := &iam.CreateRoleInput{
		RoleName:                 aws.String(d.Name),
		Path:                     aws.String(d.Path),
		AssumeRolePolicyDocument: aws.String(trust),
		Description:              aws.String(d.Description),
		MaxSessionDuration:       aws.Int32(d.MaxSessionDuration),
		Tags:                     toTags(d.Tags),
	}
	if d.Boundary != "" {
		in.PermissionsBoundary = aws.String(d.Boundary)
	}
	out, err := c.IAM.CreateRole(ctx, in)
	if err != nil {
		return "", "", fmt.Errorf("creating role %s: %w", d.Name, err)
	}
	arn, id = aws.ToString(out.Role.Arn), aws.ToString(out.Role.RoleId)
	plan := Plan{PutPermissions: d.Permissions != nil, Attach: d.ManagedPolicies}
	// The role exists from here on: its ARN and ID are returned with any
	// error, so the caller records them.
	return arn, id, c.Apply(ctx, d, plan)
}

// Apply makes the IAM writes of a plan. Permissions are narrowed before they
// are widened: extra inline policies and attachments go first.
func (c Client) Apply(ctx context.Context, d Desired, p Plan) error {
	name := aws.String(d.Name)
	for _, pn := range p.DeleteInline {
		if _, err := c.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String(pn)}); err != nil && !awsiam.IsNotFound(err) {
			return fmt.Errorf("deleting inline policy %s: %w", pn, err)
		}
	}
	for _, arn := range p.Detach {
		if _, err := c.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: aws.String(arn)}); err != nil && !awsiam.IsNotFound(err) {
			return fmt.Errorf("detaching %s: %w", arn, err)
		}
	}
	if len(p.Untag) > 0 {
		if _, err := c.IAM.UntagRole(ctx, &iam.UntagRoleInput{RoleName: name, TagKeys: p.Untag}); err != nil {
			return fmt.Errorf("untagging role: %w", err)
		}
	}
	if p.PutBoundary {
		if _, err := c.IAM.PutRolePermissionsBoundary(ctx, &iam.PutRolePermissionsBoundaryInput{RoleName: name, PermissionsBoundary: aws.String(d.Boundary)}); err != nil {
			return fmt.Errorf("setting permissions boundary: %w", err)
		}
	}
	if p.UpdateTrust {
		trust, err := d.Trust.JSON()
		if err != nil {
			return err
		}
		if _, err := c.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: name, PolicyDocument: aws.String(trust)}); err != nil {
			return fmt.Errorf("updating trust policy: %w", err)
		}
	}
	if p.UpdateRole {
		if _, err := c.IAM.UpdateRole(ctx, &iam.UpdateRoleInput{RoleName: name, Description: aws.String(d.Description), MaxSessionDuration: aws.Int32(d.MaxSessionDuration)}); err != nil {
			return fmt.Errorf("updating role: %w", err)
		}
	}
	if p.PutPermissions && d.Permissions != nil {
		doc, err := d.Permissions.JSON()
		if err != nil {
			return err
		}
		if _, err := c.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: name, PolicyName: aws.String(InlinePolicyName), PolicyDocument: aws.String(doc)}); err != nil {
			return fmt.Errorf("writing permission policy: %w", err)
		}
	}
	for _, arn := range p.Attach {
		if _, err := c.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: name, PolicyArn: aws.String(arn)}); err != nil {
			if awsiam.IsNotFound(err) {
				// The policy was read just before (or the binding failed
				// closed on it), so this is IAM's eventual consistency
				// right after CreateRole, or a policy deleted since: retry,
				// and the next read decides.
				return awsiam.AsRetryable(fmt.Errorf("attaching managed policy %s: %w", arn, err))
			}
			return fmt.Errorf("attaching %s: %w", arn, err)
		}
	}
	if len(p.SetTags) > 0 {
		if _, err := c.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: name, Tags: toTags(p.SetTags)}); err != nil {
			return fmt.Errorf("tagging role: %w", err)
		}
	}
	return nil
}

// Delete removes a role's inline policies and attachments, then the role.
// A role that is already gone counts as deleted. id is the role ID the
// delete was planned against; this client plans only against its own reads
// in the same reconcile, and RoleCache confirms it for older observations.
func (c Client) Delete(ctx context.Context, name, _ string) error {
	names, err := c.inlinePolicyNames(ctx, name)
	if awsiam.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	attached, err := c.attachedPolicies(ctx, name)
	if awsiam.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, Desired{Name: name}, Plan{DeleteInline: names, Detach: attached}); err != nil {
		return err
	}
	if _, err := c.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)}); err != nil && !awsiam.IsNotFound(err) {
		return fmt.Errorf("deleting role %s: %w", name, err)
	}
	return nil
}

func toTags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

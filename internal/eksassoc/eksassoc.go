// Package eksassoc reads and writes the EKS pod identity associations of
// one cluster with aws-sdk-go-v2/service/eks.
package eksassoc

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
)

// Association is what the operator reads of one association.
type Association struct {
	ID, ARN, Namespace, ServiceAccount, RoleARN string
	Tags                                        map[string]string
	// SessionTagsDisabled: EKS passes no session tags, so an exact trust
	// (identity.PodIdentity) refuses the association's pods.
	SessionTagsDisabled bool
}

// API is the part of the EKS client this package uses.
type API interface {
	CreatePodIdentityAssociation(context.Context, *eks.CreatePodIdentityAssociationInput, ...func(*eks.Options)) (*eks.CreatePodIdentityAssociationOutput, error)
	DescribePodIdentityAssociation(context.Context, *eks.DescribePodIdentityAssociationInput, ...func(*eks.Options)) (*eks.DescribePodIdentityAssociationOutput, error)
	UpdatePodIdentityAssociation(context.Context, *eks.UpdatePodIdentityAssociationInput, ...func(*eks.Options)) (*eks.UpdatePodIdentityAssociationOutput, error)
	DeletePodIdentityAssociation(context.Context, *eks.DeletePodIdentityAssociationInput, ...func(*eks.Options)) (*eks.DeletePodIdentityAssociationOutput, error)
	ListPodIdentityAssociations(context.Context, *eks.ListPodIdentityAssociationsInput, ...func(*eks.Options)) (*eks.ListPodIdentityAssociationsOutput, error)
	TagResource(context.Context, *eks.TagResourceInput, ...func(*eks.Options)) (*eks.TagResourceOutput, error)
}

// Client manages one cluster's associations.
type Client struct {
	API     API
	Cluster string
}

// Find returns the association of the ServiceAccount (nil: none). EKS
// allows one per cluster, namespace and ServiceAccount.
func (c *Client) Find(ctx context.Context, namespace, serviceAccount string) (*Association, error) {
	out, err := c.API.ListPodIdentityAssociations(ctx, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String(c.Cluster),
		Namespace: aws.String(namespace), ServiceAccount: aws.String(serviceAccount)})
	if err != nil {
		return nil, err
	}
	for _, s := range out.Associations {
		if aws.ToString(s.Namespace) == namespace && aws.ToString(s.ServiceAccount) == serviceAccount {
			return c.describe(ctx, aws.ToString(s.AssociationId))
		}
	}
	return nil, nil
}

// Get returns the association with that ID (nil: none).
func (c *Client) Get(ctx context.Context, id string) (*Association, error) {
	return c.describe(ctx, id)
}

func (c *Client) describe(ctx context.Context, id string) (*Association, error) {
	out, err := c.API.DescribePodIdentityAssociation(ctx, &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String(c.Cluster), AssociationId: aws.String(id)})
	var nf *ekstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return of(out.Association), nil
}

func of(a *ekstypes.PodIdentityAssociation) *Association {
	return &Association{ID: aws.ToString(a.AssociationId), ARN: aws.ToString(a.AssociationArn), Namespace: aws.ToString(a.Namespace),
		ServiceAccount: aws.ToString(a.ServiceAccount), RoleARN: aws.ToString(a.RoleArn), Tags: a.Tags,
		SessionTagsDisabled: aws.ToBool(a.DisableSessionTags)}
}

// Create creates the association with session tags enabled. requestToken
// makes a retried create return the same association.
func (c *Client) Create(ctx context.Context, namespace, serviceAccount, roleARN, requestToken string, tags map[string]string) (*Association, error) {
	out, err := c.API.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String(c.Cluster),
		Namespace: aws.String(namespace), ServiceAccount: aws.String(serviceAccount), RoleArn: aws.String(roleARN),
		DisableSessionTags: aws.Bool(false), ClientRequestToken: aws.String(requestToken), Tags: tags})
	if err != nil {
		return nil, err
	}
	return of(out.Association), nil
}

// Converge points the association at roleARN with session tags enabled.
func (c *Client) Converge(ctx context.Context, id, roleARN string) (*Association, error) {
	out, err := c.API.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String(c.Cluster),
		AssociationId: aws.String(id), RoleArn: aws.String(roleARN), DisableSessionTags: aws.Bool(false)})
	if err != nil {
		return nil, err
	}
	return of(out.Association), nil
}

// Delete deletes the association; one already gone is not an error.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.API.DeletePodIdentityAssociation(ctx, &eks.DeletePodIdentityAssociationInput{ClusterName: aws.String(c.Cluster), AssociationId: aws.String(id)})
	var nf *ekstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

// Tag adds tags to the association.
func (c *Client) Tag(ctx context.Context, arn string, tags map[string]string) error {
	_, err := c.API.TagResource(ctx, &eks.TagResourceInput{ResourceArn: aws.String(arn), Tags: tags})
	return err
}

// IDs lists every association of the cluster, "namespace/serviceAccount" ->
// association ID, in ListPodIdentityAssociations pages (up to 100 each).
func (c *Client) IDs(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	p := eks.NewListPodIdentityAssociationsPaginator(c.API, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String(c.Cluster), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Associations {
			out[aws.ToString(s.Namespace)+"/"+aws.ToString(s.ServiceAccount)] = aws.ToString(s.AssociationId)
		}
	}
	return out, nil
}

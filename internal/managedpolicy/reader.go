// Package managedpolicy reads the default version of IAM managed policies,
// so their documents can be held to the same guardrails as inline
// statements. Documents are cached by policy ARN and version ID: a version
// never changes, so only GetPolicy (to learn the default version) is repeated.
package managedpolicy

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

// API is the part of IAM the reader calls.
type API interface {
	GetPolicy(ctx context.Context, in *iam.GetPolicyInput, optFns ...func(*iam.Options)) (*iam.GetPolicyOutput, error)
	GetPolicyVersion(ctx context.Context, in *iam.GetPolicyVersionInput, optFns ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error)
}

// Reader reads and caches managed policy documents. Safe for concurrent use.
type Reader struct {
	IAM API

	mu    sync.Mutex
	cache map[string]guard.ManagedPolicy // key: arn + " " + version ID
}

// Read returns the default version of each ARN. A policy that does not exist,
// cannot be read (access denied) or does not parse is returned with Err set,
// so the guard fails closed on it. A retryable error (throttling, outage) is
// returned as the error: nothing should be decided on missing information.
func (r *Reader) Read(ctx context.Context, arns []string) (guard.Managed, error) {
	out := guard.Managed{}
	for _, arn := range arns {
		mp, err := r.read(ctx, arn)
		if err != nil {
			return nil, err
		}
		out[arn] = mp
	}
	return out, nil
}

func (r *Reader) read(ctx context.Context, arn string) (guard.ManagedPolicy, error) {
	p, err := r.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		if awsiam.Classify(err) == awsiam.Retryable {
			return guard.ManagedPolicy{}, fmt.Errorf("reading managed policy %s: %w", arn, err)
		}
		return guard.ManagedPolicy{Err: fmt.Errorf("%s", awsiam.Message(err))}, nil
	}
	version := aws.ToString(p.Policy.DefaultVersionId)
	key := arn + " " + version
	r.mu.Lock()
	cached, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		return cached, nil
	}
	v, err := r.IAM.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String(version)})
	if err != nil {
		if awsiam.Classify(err) == awsiam.Retryable {
			return guard.ManagedPolicy{}, fmt.Errorf("reading managed policy %s version %s: %w", arn, version, err)
		}
		return guard.ManagedPolicy{VersionID: version, Err: fmt.Errorf("%s", awsiam.Message(err))}, nil
	}
	mp := guard.ManagedPolicy{VersionID: version}
	if v.PolicyVersion == nil {
		mp.Err = fmt.Errorf("IAM returned no document for version %s", version)
	} else {
		doc, err := policy.Parse(aws.ToString(v.PolicyVersion.Document))
		if err != nil {
			mp.Err = err
		}
		mp.Document = doc
	}
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]guard.ManagedPolicy{}
	}
	r.cache[key] = mp
	r.mu.Unlock()
	return mp, nil
}

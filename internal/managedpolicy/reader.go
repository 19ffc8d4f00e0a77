// Package managedpolicy reads the default version of IAM managed policies,
// so their documents can be held to the same guardrails as inline
// statements. Documents are cached by policy ARN and version ID (a version
// never changes) and default version IDs for a while (Reader.DefaultTTL).
package managedpolicy

import (
	"context"
	"fmt"
	"sync"
	"time"

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
// Each policy's default version ID is trusted for DefaultTTL (reconciles
// and admission of many bindings naming one policy then cost no IAM call);
// ReadFresh, which the drift sweep uses once per policy per sweep, always
// asks IAM, so a changed default version is seen within a sync period.
type Reader struct {
	IAM API
	// DefaultTTL is how long a policy's default version ID is reused
	// without GetPolicy (0: always ask).
	DefaultTTL time.Duration

	mu       sync.Mutex
	cache    map[string]guard.ManagedPolicy // key: arn + " " + version ID
	defaults map[string]defaultVersion      // key: arn
}

type defaultVersion struct {
	id string
	at time.Time
}

// MaxCached bounds the documents and default versions kept: tenants choose
// which ARNs to name.
const MaxCached = 512

// Read returns the default version of each ARN. A policy that does not exist,
// cannot be read (access denied) or does not parse is returned with Err set,
// so the guard fails closed on it. A retryable error (throttling, outage) is
// returned as the error: nothing should be decided on missing information.
func (r *Reader) Read(ctx context.Context, arns []string) (guard.Managed, error) {
	return r.readAll(ctx, arns, false)
}

// ReadFresh is Read with every default version read from IAM.
func (r *Reader) ReadFresh(ctx context.Context, arns []string) (guard.Managed, error) {
	return r.readAll(ctx, arns, true)
}

func (r *Reader) readAll(ctx context.Context, arns []string, fresh bool) (guard.Managed, error) {
	out := guard.Managed{}
	for _, arn := range arns {
		mp, err := r.read(ctx, arn, fresh)
		if err != nil {
			return nil, err
		}
		out[arn] = mp
	}
	return out, nil
}

// defaultVersion returns the policy's default version ID: cached when
// younger than DefaultTTL and fresh is false, otherwise from GetPolicy.
func (r *Reader) defaultVersion(ctx context.Context, arn string, fresh bool) (string, *guard.ManagedPolicy, error) {
	r.mu.Lock()
	d, ok := r.defaults[arn]
	r.mu.Unlock()
	if ok && !fresh && time.Since(d.at) < r.DefaultTTL {
		return d.id, nil, nil
	}
	p, err := r.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		r.mu.Lock()
		delete(r.defaults, arn)
		r.mu.Unlock()
		if awsiam.Classify(err) == awsiam.Retryable {
			return "", nil, fmt.Errorf("reading managed policy %s: %w", arn, err)
		}
		return "", &guard.ManagedPolicy{Err: fmt.Errorf("%s", awsiam.Message(err))}, nil
	}
	version := aws.ToString(p.Policy.DefaultVersionId)
	r.mu.Lock()
	if r.defaults == nil {
		r.defaults = map[string]defaultVersion{}
	}
	evictOne(r.defaults)
	r.defaults[arn] = defaultVersion{id: version, at: time.Now()}
	r.mu.Unlock()
	return version, nil, nil
}

// evictOne drops an arbitrary entry from a full map.
func evictOne[V any](m map[string]V) {
	if len(m) < MaxCached {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

func (r *Reader) read(ctx context.Context, arn string, fresh bool) (guard.ManagedPolicy, error) {
	version, unreadable, err := r.defaultVersion(ctx, arn, fresh)
	if err != nil {
		return guard.ManagedPolicy{}, err
	}
	if unreadable != nil {
		return *unreadable, nil
	}
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
	evictOne(r.cache)
	r.cache[key] = mp
	r.mu.Unlock()
	return mp, nil
}

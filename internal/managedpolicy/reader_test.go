package managedpolicy

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

type fakeIAM struct {
	defaultVersion        string
	getPolicy, getVersion int
}

func (f *fakeIAM) GetPolicy(_ context.Context, in *iam.GetPolicyInput, _ ...func(*iam.Options)) (*iam.GetPolicyOutput, error) {
	f.getPolicy++
	return &iam.GetPolicyOutput{Policy: &types.Policy{Arn: in.PolicyArn, DefaultVersionId: aws.String(f.defaultVersion)}}, nil
}

func (f *fakeIAM) GetPolicyVersion(_ context.Context, in *iam.GetPolicyVersionInput, _ ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error) {
	f.getVersion++
	action := map[string]string{"v1": "s3:GetObject", "v2": "iam:*"}[aws.ToString(in.VersionId)]
	return &iam.GetPolicyVersionOutput{PolicyVersion: &types.PolicyVersion{VersionId: in.VersionId,
		Document: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"` + action + `","Resource":"*"}]}`)}}, nil
}

// Issue 17 defect 4: many reads of one policy within the TTL cost one
// GetPolicy and one GetPolicyVersion; ReadFresh (the sweep) always asks for
// the default version, so a new default version is seen.
func TestReaderCachesDefaultVersions(t *testing.T) {
	ctx := context.Background()
	api := &fakeIAM{defaultVersion: "v1"}
	r := &Reader{IAM: api, DefaultTTL: time.Hour}
	const arn = "arn:aws:iam::123456789012:policy/p"
	for range 100 {
		m, err := r.Read(ctx, []string{arn})
		if err != nil || m[arn].VersionID != "v1" {
			t.Fatalf("read: %v %+v", err, m)
		}
	}
	if api.getPolicy != 1 || api.getVersion != 1 {
		t.Errorf("100 reads cost %d GetPolicy and %d GetPolicyVersion, want 1 and 1", api.getPolicy, api.getVersion)
	}
	api.defaultVersion = "v2"
	if m, _ := r.Read(ctx, []string{arn}); m[arn].VersionID != "v1" {
		t.Errorf("within the TTL Read asked IAM again")
	}
	m, err := r.ReadFresh(ctx, []string{arn})
	if err != nil || m[arn].VersionID != "v2" || m[arn].Document.Statement[0].Action[0] != "iam:*" {
		t.Fatalf("ReadFresh: %v %+v", err, m[arn])
	}
	if m, _ := r.Read(ctx, []string{arn}); m[arn].VersionID != "v2" {
		t.Errorf("Read after ReadFresh gives %s", m[arn].VersionID)
	}

	zero := &Reader{IAM: api}
	zero.Read(ctx, []string{arn})
	before := api.getPolicy
	zero.Read(ctx, []string{arn})
	if api.getPolicy != before+1 {
		t.Errorf("with no TTL the default version is not read again")
	}
}

func TestReaderCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	api := &fakeIAM{defaultVersion: "v1"}
	r := &Reader{IAM: api, DefaultTTL: time.Hour}
	for i := range 3 * MaxCached {
		if _, err := r.Read(ctx, []string{"arn:aws:iam::123456789012:policy/p" + string(rune('a'+i%26)) + time.Duration(i).String()}); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.cache) > MaxCached || len(r.defaults) > MaxCached {
		t.Errorf("cache %d, defaults %d entries, bound %d", len(r.cache), len(r.defaults), MaxCached)
	}
}

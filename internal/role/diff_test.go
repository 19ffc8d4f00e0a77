package role

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

var testConfig = Config{
	ClusterName: "dev", RolePath: "/podidentity/",
	ProviderARN: "arn:aws:iam::123456789012:oidc-provider/issuer.example/id/1", Issuer: "issuer.example/id/1",
}

func testBinding() *v1alpha1.PodIdentityBinding {
	return &v1alpha1.PodIdentityBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: v1alpha1.PodIdentityBindingSpec{
			ServiceAccountName: "cart",
			Permissions: []v1alpha1.PermissionStatement{{
				Actions: []string{"dynamodb:GetItem"}, Resources: []string{"arn:aws:dynamodb:*:*:table/cart"}}},
			ManagedPolicyArns: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
			Tags:              map[string]string{"team": "shop"},
		},
	}
}

// observedFrom is what IAM would report for a role created from d.
func observedFrom(d Desired) Observed {
	o := Observed{
		Description: d.Description, MaxSessionDuration: d.MaxSessionDuration, Trust: d.Trust.Fingerprint(),
		Boundary: d.Boundary, Tags: map[string]string{},
		ManagedPolicies: append([]string(nil), d.ManagedPolicies...),
	}
	for k, v := range d.Tags {
		o.Tags[k] = v
	}
	if d.Permissions != nil {
		o.Inline = o.Inline.Set(InlinePolicyName, InlineOf(*d.Permissions))
	}
	return o
}

func TestDesiredFor(t *testing.T) {
	d := DesiredFor(testConfig, testBinding())
	if d.Name != "dev_shop_cart" || d.Path != "/podidentity/" || d.MaxSessionDuration != 3600 {
		t.Errorf("unexpected desired role: %+v", d)
	}
	wantTags := map[string]string{"team": "shop", TagCluster: "dev", TagNamespace: "shop", TagBinding: "cart"}
	if diff := cmp.Diff(wantTags, d.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	b := testBinding()
	b.Spec.RoleName = "custom"
	b.Spec.Tags[TagCluster] = "other" // ownership tags always win
	if d := DesiredFor(testConfig, b); d.Name != "custom" || d.Tags[TagCluster] != "dev" {
		t.Errorf("override or ownership tags wrong: %s %v", d.Name, d.Tags)
	}
}

func TestDiff(t *testing.T) {
	desired := DesiredFor(testConfig, testBinding())
	withBoundary := desired
	withBoundary.Boundary = "arn:aws:iam::123456789012:policy/boundary"

	tests := []struct {
		name    string
		desired Desired
		mutate  func(o *Observed)
		want    []vocab.ChangeKind
	}{
		{name: "in sync", desired: desired, mutate: func(*Observed) {}},
		{name: "trust widened", desired: desired, mutate: func(o *Observed) {
			o.Trust = policy.TrustPolicy(policy.TrustInput{ProviderARN: testConfig.ProviderARN, Issuer: testConfig.Issuer, Namespace: "shop", ServiceAccount: "other"}).Fingerprint()
		}, want: []vocab.ChangeKind{"TrustPolicy"}},
		{name: "unparseable trust is rewritten", desired: desired, mutate: func(o *Observed) { o.TrustErr = errors.New("bad") }, want: []vocab.ChangeKind{"TrustPolicy"}},
		{name: "inline policy edited", desired: desired, mutate: func(o *Observed) {
			o.Inline = o.Inline.Set(InlinePolicyName, InlineOf(policy.Document{Version: policy.Version, Statement: []policy.Statement{{Effect: "Allow", Action: policy.StringList{"*"}, Resource: policy.StringList{"*"}}}}))
		}, want: []vocab.ChangeKind{"InlinePolicy"}},
		{name: "inline policy deleted", desired: desired, mutate: func(o *Observed) { o.Inline = o.Inline.Delete(InlinePolicyName) }, want: []vocab.ChangeKind{"InlinePolicy"}},
		{name: "extra inline policy", desired: desired, mutate: func(o *Observed) { o.Inline = o.Inline.Set("admin", InlineOf(policy.Document{})) }, want: []vocab.ChangeKind{"ExtraInlinePolicy"}},
		{name: "managed policy attached and detached", desired: desired, mutate: func(o *Observed) {
			o.ManagedPolicies = []string{"arn:aws:iam::aws:policy/AdministratorAccess"}
		}, want: []vocab.ChangeKind{"ManagedPolicies", "ManagedPolicies"}},
		{name: "max session duration", desired: desired, mutate: func(o *Observed) { o.MaxSessionDuration = 43200 }, want: []vocab.ChangeKind{"MaxSessionDuration"}},
		{name: "boundary removed", desired: withBoundary, mutate: func(o *Observed) { o.Boundary = "" }, want: []vocab.ChangeKind{"PermissionsBoundary"}},
		{name: "unmanaged boundary left alone", desired: desired, mutate: func(o *Observed) { o.Boundary = "arn:aws:iam::123456789012:policy/x" }},
		{name: "tags changed", desired: desired, mutate: func(o *Observed) {
			o.Tags["team"] = "x"
			o.Tags["extra"] = "y"
			o.Tags["aws:cloudformation:stack"] = "z"
		},
			want: []vocab.ChangeKind{"Tags", "Tags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := observedFrom(tt.desired)
			if tt.desired.Boundary != "" && tt.name != "boundary removed" {
				o.Boundary = tt.desired.Boundary
			}
			tt.mutate(&o)
			p := Diff(tt.desired, o)
			if diff := cmp.Diff(tt.want, p.Kinds()); diff != "" {
				t.Errorf("kinds (-want +got):\n%s\nchanges: %v", diff, p.Changes())
			}
			if p.Empty() != (len(tt.want) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

func TestDiffPlan(t *testing.T) {
	d := DesiredFor(testConfig, testBinding())
	o := observedFrom(d)
	o.ManagedPolicies = []string{"arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess"}
	o.Inline = o.Inline.Set("admin", InlineOf(policy.Document{}))
	o.Tags["extra"] = "1"
	p := Diff(d, o)
	if diff := cmp.Diff([]string{"arn:aws:iam::aws:policy/AdministratorAccess"}, p.Detach); diff != "" {
		t.Errorf("detach: %s", diff)
	}
	if len(p.Attach) != 0 || p.PutPermissions || p.UpdateTrust {
		t.Errorf("unexpected writes: %+v", p)
	}
	if diff := cmp.Diff([]string{"admin"}, p.DeleteInline); diff != "" {
		t.Errorf("delete inline: %s", diff)
	}
	if diff := cmp.Diff([]string{"extra"}, p.Untag); diff != "" {
		t.Errorf("untag: %s", diff)
	}

	noPerms := testBinding()
	noPerms.Spec.Permissions = nil
	p = Diff(DesiredFor(testConfig, noPerms), o)
	if !cmp.Equal([]string{"admin", InlinePolicyName}, p.DeleteInline) {
		t.Errorf("permissions removed from spec should delete our inline policy: %v", p.DeleteInline)
	}
}

func TestOwnedBy(t *testing.T) {
	other := testConfig
	other.ClusterName = "prod"
	tagged := &Observed{ID: "AROA1", Tags: OwnershipTags(testConfig, "shop", "cart")}
	untagged := &Observed{ID: "AROA1", Tags: map[string]string{}}
	tests := []struct {
		name    string
		o       *Observed
		knownID string
		cfg     Config
		binding string
		want    bool
	}{
		{name: "own tags", o: tagged, cfg: testConfig, binding: "cart", want: true},
		{name: "other binding's tags", o: tagged, cfg: testConfig, binding: "other", want: false},
		{name: "other cluster", o: tagged, cfg: other, binding: "cart", want: false},
		{name: "no tags, unknown ID", o: untagged, cfg: testConfig, binding: "cart", want: false},
		{name: "tags removed, recorded ID", o: untagged, knownID: "AROA1", cfg: testConfig, binding: "cart", want: true},
		{name: "no tags, different ID", o: untagged, knownID: "AROA2", cfg: testConfig, binding: "cart", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OwnedBy(tt.o, tt.knownID, tt.cfg, "shop", tt.binding); got != tt.want {
				t.Errorf("OwnedBy() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCurrentBinding(t *testing.T) {
	b := testBinding()
	b.Status.ServiceAccountName = "old-sa"
	o := observedFrom(DesiredFor(testConfig, testBinding()))
	o.MaxSessionDuration = 7200
	cur := CurrentBinding(b, &o)
	if cur.Spec.ServiceAccountName != "old-sa" || *cur.Spec.MaxSessionDuration != 7200 {
		t.Errorf("current binding: %+v", cur.Spec)
	}
	if len(cur.Spec.Permissions) != 1 || cur.Spec.Permissions[0].Actions[0] != "dynamodb:GetItem" {
		t.Errorf("permissions not read from the role: %+v", cur.Spec.Permissions)
	}
	if !cmp.Equal(cur.Spec.ManagedPolicyArns, o.ManagedPolicies) {
		t.Errorf("managed policies: %v", cur.Spec.ManagedPolicyArns)
	}
	if b.Spec.ServiceAccountName != "cart" {
		t.Error("CurrentBinding changed its input")
	}
}

func TestTagKeysCaseInsensitive(t *testing.T) {
	d := Desired{Tags: map[string]string{TagCluster: "dev", "Team": "a"}}
	// Same keys in another case, same values: in sync.
	p := Diff(d, Observed{Tags: map[string]string{"PodIdentity.io/Cluster": "dev", "team": "a"}, Trust: d.Trust.Fingerprint()})
	if p.SetTags != nil || p.Untag != nil {
		t.Errorf("case-only differences are changes: %v", p.Changes())
	}
	// A case variant with another cluster's value is overwritten, never kept.
	p = Diff(d, Observed{Tags: map[string]string{"PodIdentity.io/cluster": "other", "team": "a"}, Trust: d.Trust.Fingerprint()})
	if p.SetTags[TagCluster] != "dev" || len(p.Untag) != 0 {
		t.Errorf("plan = %v", p.Changes())
	}
	o := &Observed{Tags: map[string]string{"podidentity.io/cluster": "dev", "PODIDENTITY.IO/CLUSTER": "other", TagNamespace: "ns", TagBinding: "b"}}
	if OwnedBy(o, "", Config{ClusterName: "dev"}, "ns", "b") {
		t.Error("conflicting case variants of the cluster tag count as ownership")
	}
	if !IsReservedTag("PodIdentity.IO/anything") || IsReservedTag("podidentity.iox") {
		t.Error("IsReservedTag")
	}
}

func TestReservedSpecTagsAreNeverDesired(t *testing.T) {
	b := &v1alpha1.PodIdentityBinding{}
	b.Namespace, b.Name = "ns", "b"
	b.Spec.Tags = map[string]string{"PodIdentity.io/cluster": "evil", "team": "a"}
	d := DesiredFor(Config{ClusterName: "dev"}, b)
	if v, _ := TagValue(d.Tags, TagCluster); v != "dev" || len(d.Tags) != 4 {
		t.Errorf("tags = %v", d.Tags)
	}
}

// TestAppliedConverges: after applying the plan, the role the operator
// remembers is in sync with the desired one, for random starting points;
// and Created matches what IAM reports for a role made from d.
func TestAppliedConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261127, 1))
	pick := func(n int) bool { return rng.IntN(n) == 0 }
	for i := range 500 {
		b := testBinding()
		if pick(2) {
			b.Spec.ManagedPolicyArns = nil
		}
		if pick(3) {
			b.Spec.Permissions = nil
		}
		if pick(2) {
			b.Spec.Description = "described"
		}
		cfg := testConfig
		if pick(2) {
			cfg.PermissionsBoundaryARN = "arn:aws:iam::123456789012:policy/boundary"
		}
		d := DesiredFor(cfg, b)
		o := observedFrom(DesiredFor(testConfig, testBinding()))
		if pick(2) {
			o.Inline = o.Inline.Set("backdoor", InlineOf(policy.Document{Version: policy.Version}))
		}
		if pick(2) {
			o.InlineErr = map[string]error{"broken": errors.New("bad")}
		}
		if pick(2) {
			o.Tags["PodIdentity.io/Cluster"] = "other"
		}
		if pick(2) {
			o.ManagedPolicies = append(o.ManagedPolicies, "arn:aws:iam::aws:policy/AdministratorAccess")
		}
		if pick(2) {
			o.Trust = policy.Document{}.Fingerprint()
		}
		if pick(2) {
			o.MaxSessionDuration = 7200
		}
		after := Applied(d, o, Diff(d, o))
		if p := Diff(d, *after); !p.Empty() {
			t.Fatalf("case %d: still differs after apply: %v", i, p.Changes())
		}
	}
	d := DesiredFor(testConfig, testBinding())
	created := Created(d, "arn", "AROA1")
	want := observedFrom(d)
	want.ARN, want.ID, want.Path, want.InlineErr = "arn", "AROA1", d.Path, map[string]error{}
	if diff := cmp.Diff(want, *created, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Created differs from what IAM reports (-want +got):\n%s", diff)
	}
}

func TestInlines(t *testing.T) {
	var in Inlines
	for _, n := range []string{"b", "a", "c", "a"} {
		in = in.Set(n, InlinePolicy{JSON: n + "-doc"})
	}
	in = in.Delete("c").Delete("missing")
	if got := []string{in[0].Name, in[1].Name}; len(in) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("inlines %+v", in)
	}
	if p, ok := in.Get("b"); !ok || p.JSON != "b-doc" || p.Name != "b" {
		t.Errorf("Get(b) = %+v, %v", p, ok)
	}
	if _, ok := in.Get("c"); ok {
		t.Error("a deleted policy is still there")
	}
}

package guard

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

var checker = Checker{
	Catalog:  catalog.Default(),
	Builtins: true,
	RoleConfig: role.Config{ClusterName: "dev", RolePath: "/podidentity/",
		ProviderARN: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X", Issuer: "oidc.example.com/id/X"},
}

func binding(stmts ...v1alpha1.PermissionStatement) *v1alpha1.PodIdentityBinding {
	return &v1alpha1.PodIdentityBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"},
		Spec:       v1alpha1.PodIdentityBindingSpec{ServiceAccountName: "app", Permissions: stmts},
	}
}

func allow(actions []string, resources ...string) v1alpha1.PermissionStatement {
	return v1alpha1.PermissionStatement{Effect: v1alpha1.EffectAllow, Actions: actions, Resources: resources}
}

func TestCheck(t *testing.T) {
	table := "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
	tests := []struct {
		name          string
		b             *v1alpha1.PodIdentityBinding
		rules         []Rule
		wantInvalid   string
		wantViolation string
		wantWarning   string
		wantDropped   []int
	}{
		{name: "clean", b: binding(allow([]string{"dynamodb:GetItem"}, table))},
		{name: "typo in service", b: binding(allow([]string{"dyanmodb:GetItem"}, table)), wantInvalid: `did you mean "dynamodb:GetItem"`},
		{name: "typo in action", b: binding(allow([]string{"s3:GetObjects"}, "arn:aws:s3:::b/*")), wantInvalid: `did you mean "s3:GetObject"`},
		{name: "typo in a deny is invalid too", b: binding(v1alpha1.PermissionStatement{Effect: v1alpha1.EffectDeny, Actions: []string{"s3:DeleteObjectz"}, Resources: []string{"*"}}),
			wantInvalid: "s3:DeleteObject"},
		{name: "wildcard matching nothing", b: binding(allow([]string{"s3:Fly*"}, "*")), wantInvalid: "matches no action"},
		{name: "star", b: binding(allow([]string{"*"}, "*")), wantViolation: "grants every action", wantDropped: []int{0}},
		{name: "iam write", b: binding(allow([]string{"iam:*"}, "*")), wantViolation: "IAM write action", wantDropped: []int{0}},
		{name: "iam read is fine", b: binding(allow([]string{"iam:GetRole"}, "*"))},
		{name: "passrole", b: binding(allow([]string{"iam:PassRole"}, "*")), wantViolation: "iam:PassRole", wantDropped: []int{0}},
		{name: "assume role on star", b: binding(allow([]string{"sts:AssumeRole"}, "*")), wantViolation: "on a wildcard resource", wantDropped: []int{0}},
		{name: "issue 17 defect 7: assuming a named role needs a guardrail that names it", b: binding(allow([]string{"sts:AssumeRole"}, "arn:aws:iam::123456789012:role/reader")),
			wantViolation: "allowedAssumableRoles", wantDropped: []int{0}},
		{name: "assume a role a guardrail allows", b: binding(allow([]string{"sts:AssumeRole"}, "arn:aws:iam::123456789012:role/reader")),
			rules: []Rule{{Name: "hop", AllowedAssumableRoles: []string{"arn:aws:iam::123456789012:role/read*"}}}},
		{name: "organizations", b: binding(allow([]string{"organizations:List*"}, "*")), wantViolation: "organizations", wantDropped: []int{0}},
		{name: "deny statements never violate", b: binding(v1alpha1.PermissionStatement{Effect: v1alpha1.EffectDeny, Actions: []string{"iam:*"}, Resources: []string{"*"}})},
		{name: "write on star warns", b: binding(allow([]string{"s3:PutObject"}, "*")), wantWarning: "s3:PutObject"},
		{name: "guardrail deny overlaps a wildcard", b: binding(allow([]string{"s3:*"}, "*")),
			rules: []Rule{{Name: "no-deletes", DeniedActions: []string{"s3:Delete*"}}}, wantViolation: "which is denied (guardrail no-deletes)", wantDropped: []int{0}},
		{name: "guardrail allow list", b: binding(allow([]string{"dynamodb:GetItem"}, table), allow([]string{"s3:GetObject"}, "arn:aws:s3:::b/*")),
			rules: []Rule{{Name: "dynamo-only", AllowedActions: []string{"dynamodb:Get*", "dynamodb:Query"}}}, wantViolation: "s3:GetObject, which is not among the allowed", wantDropped: []int{1}},
		{name: "deny beats allow", b: binding(allow([]string{"dynamodb:GetItem"}, table)),
			rules: []Rule{{Name: "allow", AllowedActions: []string{"dynamodb:*"}}, {Name: "deny", DeniedActions: []string{"dynamodb:GetItem"}}}, wantViolation: "guardrail deny", wantDropped: []int{0}},
		{name: "allowed resources", b: binding(allow([]string{"s3:GetObject"}, "arn:aws:s3:::team-a-*/x", "arn:aws:s3:::other/x")),
			rules: []Rule{{Name: "buckets", AllowedResources: []string{"arn:aws:s3:::team-a-*"}}}, wantViolation: `"arn:aws:s3:::other/x"`, wantDropped: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := checker.Check(tt.b, tt.rules, nil)
			check := func(kind, want string, got string) {
				if want == "" && got != "" {
					t.Errorf("unexpected %s: %s", kind, got)
				}
				if want != "" && !strings.Contains(got, want) {
					t.Errorf("%s = %q, want containing %q", kind, got, want)
				}
			}
			check("invalid", tt.wantInvalid, Message(r.Invalid))
			check("violation", tt.wantViolation, Message(r.Violations))
			if tt.wantWarning != "" {
				check("warning", tt.wantWarning, strings.Join(r.Warnings, "; "))
			}
			var dropped []int
			for i := range tt.b.Spec.Permissions {
				if r.DropStatements[i] {
					dropped = append(dropped, i)
				}
			}
			if len(dropped) != len(tt.wantDropped) {
				t.Errorf("dropped %v, want %v", dropped, tt.wantDropped)
			}
		})
	}
}

func TestQuotas(t *testing.T) {
	many := make([]string, 0, 400)
	for range 400 {
		many = append(many, "arn:aws:s3:::a-rather-long-bucket-name-for-testing/some/prefix/*")
	}
	b := binding(allow([]string{"s3:GetObject"}, many...))
	if got := Message(checker.Check(b, nil, nil).Invalid); !strings.Contains(got, "over IAM's limit of 10240") {
		t.Errorf("inline size not checked: %q", got)
	}
	b = binding(allow([]string{"s3:GetObject"}, "*"))
	for i := range 11 {
		b.Spec.ManagedPolicyArns = append(b.Spec.ManagedPolicyArns, "arn:aws:iam::aws:policy/P"+string(rune('a'+i)))
	}
	if got := Message(checker.Check(b, nil, nil).Invalid); !strings.Contains(got, "11 managed policies, over the limit of 10") {
		t.Errorf("managed policy count not checked: %q", got)
	}
	c := checker
	c.ManagedPoliciesPerRole = 20
	if got := Message(c.Check(b, nil, nil).Invalid); got != "" {
		t.Errorf("raised limit not used: %q", got)
	}
	b = binding(allow([]string{"s3:GetObject"}, "*"))
	b.Spec.Tags = map[string]string{}
	for i := range 48 {
		b.Spec.Tags[strings.Repeat("k", i+1)] = "v"
	}
	if got := Message(checker.Check(b, nil, nil).Invalid); !strings.Contains(got, "51 tags") {
		t.Errorf("tag count not checked: %q", got)
	}
}

func TestSessionBoundaryAndNarrow(t *testing.T) {
	cap := int32(3600)
	b := binding(allow([]string{"dynamodb:GetItem"}, "*"), allow([]string{"iam:CreateRole"}, "*"))
	b.Spec.MaxSessionDuration = new(int32(7200))
	b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/AdministratorAccess"}
	r := checker.Check(b, []Rule{{Name: "g", MaxSessionDuration: &cap, AllowedManagedPolicyArns: []string{"arn:aws:iam::aws:policy/ReadOnly*"},
		RequiredPermissionsBoundary: "arn:aws:iam::123456789012:policy/boundary"}}, nil)
	if r.Boundary != "arn:aws:iam::123456789012:policy/boundary" {
		t.Errorf("boundary = %q", r.Boundary)
	}
	n := r.Narrow(b)
	if len(n.Spec.Permissions) != 1 || n.Spec.Permissions[0].Actions[0] != "dynamodb:GetItem" {
		t.Errorf("narrowed permissions: %+v", n.Spec.Permissions)
	}
	if len(n.Spec.ManagedPolicyArns) != 1 || *n.Spec.MaxSessionDuration != 3600 {
		t.Errorf("narrowed: %v %d", n.Spec.ManagedPolicyArns, *n.Spec.MaxSessionDuration)
	}
	removed := r.Removed(b)
	for _, want := range []string{"statement 1: iam:CreateRole on *", "managed policy arn:aws:iam::aws:policy/AdministratorAccess", "capped at 3600"} {
		if !strings.Contains(removed, want) {
			t.Errorf("Removed() = %q lacks %q", removed, want)
		}
	}

	c := checker
	c.RoleConfig.PermissionsBoundaryARN = "arn:aws:iam::123456789012:policy/operator"
	r = c.Check(binding(allow([]string{"dynamodb:GetItem"}, "*")), []Rule{{Name: "g", RequiredPermissionsBoundary: "arn:aws:iam::123456789012:policy/other"}}, nil)
	if !strings.Contains(Message(r.Violations), "would replace the operator's boundary") || r.Boundary != c.RoleConfig.PermissionsBoundaryARN {
		t.Errorf("replacing the operator boundary not refused: %v %s", r.Violations, r.Boundary)
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"arn:aws:s3:::team-a-*", "arn:aws:s3:::team-a-logs/x", true},
		{"arn:aws:s3:::team-a-*", "arn:aws:s3:::team-a-*", true},
		{"arn:aws:s3:::team-a-*", "arn:aws:s3:::team-*", false},
		{"arn:aws:s3:::team-a-*", "*", false},
		{"*", "*", true},
		{"arn:aws:s3:::b?", "arn:aws:s3:::b*", false},
		{"arn:aws:s3:::b?", "arn:aws:s3:::b?", true},
		{"arn:aws:s3:::b/x", "arn:aws:s3:::b/x", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.pattern, tt.value); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.pattern, tt.value, got, tt.want)
		}
	}
}

// BenchmarkCheck is the admission and per-reconcile cost of checking a
// typical binding (3 statements, wildcards) under two guardrails.
func BenchmarkCheck(b *testing.B) {
	bd := binding(
		allow([]string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}, "arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
		allow([]string{"s3:Get*", "s3:List*"}, "arn:aws:s3:::team-a-data", "arn:aws:s3:::team-a-data/*"),
		allow([]string{"s3:PutObject"}, "arn:aws:s3:::team-a-data/uploads/*"),
	)
	rules := []Rule{
		{Name: "allow", AllowedActions: []string{"s3:*", "dynamodb:*"}, AllowedResources: []string{"arn:aws:s3:::team-a-*", "arn:aws:dynamodb:*:*:table/*"}},
		{Name: "deny", DeniedActions: []string{"s3:Delete*", "dynamodb:DeleteTable"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := checker.Check(bd, rules, nil); len(r.Invalid)+len(r.Violations) > 0 {
			b.Fatal(r.Invalid, r.Violations)
		}
	}
}

func TestBuiltinEscalations(t *testing.T) {
	tests := []struct {
		name      string
		stmt      v1alpha1.PermissionStatement
		rules     []Rule
		violation string
		warning   string
	}{
		{name: "assume any role by ARN wildcard", stmt: allow([]string{"sts:AssumeRole"}, "arn:aws:iam::*:role/*"), violation: "wildcard resource"},
		{name: "assume by all-wildcard ARN", stmt: allow([]string{"sts:AssumeRole"}, "arn:*:*:*:*:*"), violation: "wildcard resource"},
		{name: "AssumeRoot", stmt: allow([]string{"sts:AssumeRoot"}, "arn:aws:iam::*:root"), violation: "sts:AssumeRoot"},
		{name: "assume with a ? wildcard", stmt: allow([]string{"sts:Assume*"}, "arn:aws:iam::123456789012:role/admi?"), violation: "wildcard resource"},
		{name: "EKS access entry", stmt: allow([]string{"eks:CreateAccessEntry"}, "*"), violation: "outside IAM"},
		{name: "EKS access policy", stmt: allow([]string{"eks:AssociateAccessPolicy"}, "*"), violation: "outside IAM"},
		{name: "EKS update access entry (case)", stmt: allow([]string{"EKS:updateaccessentry"}, "*"), violation: "outside IAM"},
		{name: "Identity Center", stmt: allow([]string{"sso:CreateAccountAssignment"}, "*"), violation: "outside IAM"},
		{name: "identity store", stmt: allow([]string{"identitystore:CreateGroupMembership"}, "*"), violation: "outside IAM"},
		{name: "identity store reads are fine", stmt: allow([]string{"identitystore:DescribeUser"}, "*")},
		{name: "issue 17 defect 7: run code as another role is denied", stmt: allow([]string{"lambda:UpdateFunctionCode"}, "arn:aws:lambda:us-east-1:123456789012:function:f"), violation: "another principal's permissions"},
		{name: "issue 17 defect 7: ssm SendCommand is denied", stmt: allow([]string{"ssm:Send*"}, "arn:aws:ssm:us-east-1:123456789012:document/x"), violation: "ssm:SendCommand"},
		{name: "issue 17 defect 7: ssm StartSession through ssm:*", stmt: allow([]string{"ssm:*"}, "*"), violation: "allowedRunAsActions"},
		{name: "issue 17 defect 7: ecs RunTask", stmt: allow([]string{"ecs:RunTask"}, "*"), violation: "ecs:RunTask"},
		{name: "run-as allowed by a guardrail", stmt: allow([]string{"ssm:SendCommand"}, "*"), rules: []Rule{{Name: "ops", AllowedRunAsActions: []string{"ssm:Send*"}}}},
		{name: "issue 17 defect 7: eks:UpdateClusterConfig", stmt: allow([]string{"eks:UpdateClusterConfig"}, "*"), violation: "outside IAM"},
		{name: "issue 17 defect 7: eks:AssociateIdentityProviderConfig", stmt: allow([]string{"eks:AssociateIdentityProviderConfig"}, "*"), violation: "outside IAM"},
		{name: "assumption on a wildcard stays denied unless covered", stmt: allow([]string{"sts:AssumeRole"}, "arn:aws:iam::*:role/*"),
			rules: []Rule{{Name: "hop", AllowedAssumableRoles: []string{"arn:aws:iam::123456789012:role/*"}}}, violation: "wildcard resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := checker.Check(binding(tt.stmt), tt.rules, nil)
			got := Message(r.Violations)
			if (tt.violation == "") != (got == "") || !strings.Contains(got, tt.violation) {
				t.Errorf("violations = %q, want %q", got, tt.violation)
			}
			if tt.violation != "" && !r.DropStatements[0] {
				t.Errorf("the statement is not dropped")
			}
			w := strings.Join(r.Warnings, "\n")
			if tt.warning != "" && !strings.Contains(w, tt.warning) {
				t.Errorf("warnings = %q, want %q", w, tt.warning)
			}
		})
	}
}

func TestReservedTagKeysAnyCase(t *testing.T) {
	for _, k := range []string{"podidentity.io/cluster", "PodIdentity.io/cluster", "PODIDENTITY.IO/x"} {
		b := binding(allow([]string{"dynamodb:GetItem"}, "*"))
		b.Spec.Tags = map[string]string{k: "other"}
		if got := Message(checker.Check(b, nil, nil).Invalid); !strings.Contains(got, "reserved") {
			t.Errorf("%s: invalid = %q", k, got)
		}
	}
}

func TestManagedPolicyDocuments(t *testing.T) {
	doc := func(stmts ...policy.Statement) ManagedPolicy {
		return ManagedPolicy{VersionID: "v1", Document: policy.Document{Version: policy.Version, Statement: stmts}}
	}
	admin := "arn:aws:iam::aws:policy/AdministratorAccess"
	tests := []struct {
		name      string
		mp        *ManagedPolicy
		rules     []Rule
		violation string
	}{
		{name: "AdministratorAccess", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"*"}, Resource: policy.StringList{"*"}})}[0], violation: "grants every action"},
		{name: "IAMFullAccess", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"iam:*", "organizations:DescribeAccount"}, Resource: policy.StringList{"*"}})}[0], violation: "IAM write"},
		{name: "PowerUserAccess (NotAction)", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", NotAction: policy.StringList{"iam:*", "organizations:*"}, Resource: policy.StringList{"*"}})}[0], violation: "grants every action"},
		{name: "read-only is fine", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"s3:Get*"}, Resource: policy.StringList{"*"}})}[0]},
		{name: "a deny statement is fine", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Deny", Action: policy.StringList{"*"}, Resource: policy.StringList{"*"}})}[0]},
		{name: "guardrail denies an action in the document", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"s3:*"}, Resource: policy.StringList{"*"}})}[0],
			rules: []Rule{{Name: "no-deletes", DeniedActions: []string{"s3:Delete*"}}}, violation: "which is denied"},
		{name: "unknown IAM action fails closed", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"iam:BrandNewThing"}, Resource: policy.StringList{"*"}})}[0], violation: "cannot check"},
		{name: "unknown action of another service passes the built-ins", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"newservice:Describe*"}, Resource: policy.StringList{"*"}})}[0]},
		{name: "unknown action under an allow list fails closed", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"newservice:Describe*"}, Resource: policy.StringList{"*"}})}[0],
			rules: []Rule{{Name: "dynamodb-only", AllowedActions: []string{"dynamodb:*"}}}, violation: "cannot check against the allowed actions"},
		{name: "issue 17 defect 7: a service wildcard (*:Put*) fails closed", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"*:Put*"}, Resource: policy.StringList{"*"}})}[0], violation: "cannot check"},
		{name: "issue 17 defect 7: run-as actions in a managed policy", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"ssm:*"}, Resource: policy.StringList{"*"}})}[0], violation: "allowedRunAsActions"},
		{name: "issue 17 defect 7: role assumption in a managed policy", mp: &[]ManagedPolicy{doc(policy.Statement{Effect: "Allow", Action: policy.StringList{"sts:AssumeRole"}, Resource: policy.StringList{"arn:aws:iam::123456789012:role/x"}})}[0], violation: "allowedAssumableRoles"},
		{name: "unreadable fails closed", mp: &ManagedPolicy{Err: errors.New("AccessDenied")}, violation: "cannot be read"},
		{name: "missing from the map fails closed", violation: "not read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := binding(allow([]string{"dynamodb:GetItem"}, "*"))
			b.Spec.ManagedPolicyArns = []string{admin}
			m := Managed{}
			if tt.mp != nil {
				m[admin] = *tt.mp
			}
			r := checker.Check(b, tt.rules, m)
			got := Message(r.Violations)
			if (tt.violation == "") != (got == "") || !strings.Contains(got, tt.violation) {
				t.Fatalf("violations = %q, want %q", got, tt.violation)
			}
			if tt.violation != "" && !r.DropManaged[admin] {
				t.Errorf("the managed policy is not dropped")
			}
			if tt.violation != "" && len(r.DropStatements) > 0 {
				t.Errorf("a managed policy's violation drops inline statements: %v", r.DropStatements)
			}
		})
	}
}

func TestTrustQuotaWithAdditionalIssuers(t *testing.T) {
	c := checker
	for i := range 10 {
		id := "oidc.eks.eu-west-1.amazonaws.com/id/" + strings.Repeat(string(rune('A'+i)), 32)
		c.RoleConfig.AdditionalProviders = append(c.RoleConfig.AdditionalProviders,
			policy.Provider{ARN: "arn:aws:iam::123456789012:oidc-provider/" + id, ID: id})
	}
	b := binding(allow([]string{"s3:GetObject"}, "*"))
	got := Message(c.Check(b, nil, nil).Invalid)
	if !strings.Contains(got, "over IAM's limit of 2048 with 11 issuers (this cluster's and 10 from --additional-oidc-issuers)") {
		t.Fatalf("message = %q", got)
	}
	// The number that fits is the largest whose rendered trust is within the quota.
	fit := c.issuersThatFit(b)
	if !strings.Contains(got, fmt.Sprintf("; %d fit", fit)) || fit < 2 || fit > 10 {
		t.Fatalf("fit = %d, message = %q", fit, got)
	}
	within := c
	within.RoleConfig.AdditionalProviders = c.RoleConfig.AdditionalProviders[:fit-1]
	if msg := Message(within.Check(b, nil, nil).Invalid); msg != "" {
		t.Errorf("%d issuers were said to fit: %q", fit, msg)
	}
	over := c
	over.RoleConfig.AdditionalProviders = c.RoleConfig.AdditionalProviders[:fit]
	if msg := Message(over.Check(b, nil, nil).Invalid); msg == "" {
		t.Errorf("%d issuers do not fit, yet pass", fit+1)
	}
	raised := c
	raised.TrustPolicySize = MaxTrustPolicySize
	if msg := Message(raised.Check(b, nil, nil).Invalid); msg != "" && raised.issuersThatFit(b) <= fit {
		t.Errorf("a raised quota fits no more: %q", msg)
	}
}

// Issue 17 defect 8: no explicit roleName of one namespace is a role name
// another namespace may use or generate.
func TestRoleNameScope(t *testing.T) {
	cfg := role.Config{ClusterName: "prod", RoleNamePrefix: "irsa-"}
	c := Checker{Catalog: catalog.Default(), Builtins: true, RoleConfig: cfg}
	for _, tt := range []struct {
		ns, name string
		ok       bool
	}{
		{"shop", "shop_api", true},
		{"shop", "shop.api", true},
		{"shop", "irsa-prod_shop_api", true},
		{"shop", "irsa-prod_payments_api", false}, // payments/api's generated name
		{"shop", "payments_api", false},
		{"shop", "shop-x_api", false}, // namespace shop-x's
		{"shop-x", "shop-x_api", true},
		{"shop", "shop", false},
		{"shop", "admin", false},
		{"shop", "irsa-prod_shop", false},
	} {
		b := binding(allow([]string{"s3:GetObject"}, "*"))
		b.Namespace, b.Spec.RoleName = tt.ns, tt.name
		r := c.Check(b, nil, nil)
		if r.RoleNameForbidden == tt.ok {
			t.Errorf("%s in %s: forbidden = %v (%v)", tt.name, tt.ns, r.RoleNameForbidden, r.Violations)
		}
	}
	// An invalid spec does not skip it.
	b := binding(allow([]string{"s3:GetObjekt"}, "*"))
	b.Spec.RoleName = "prod_payments_api"
	if r := c.Check(b, nil, nil); !r.RoleNameForbidden || len(r.Invalid) == 0 {
		t.Errorf("invalid spec: forbidden = %v, invalid = %v", r.RoleNameForbidden, r.Invalid)
	}
}

// The limits admission re-checks (SchemaLimit) are the CRD's own.
func TestSchemaLimitsAreTheCRDs(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/iam.podidentity.io_podidentitybindings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								MaxItems      int `json:"maxItems"`
								MaxProperties int `json:"maxProperties"`
								Items         struct {
									Properties map[string]struct {
										MaxItems int `json:"maxItems"`
									} `json:"properties"`
								} `json:"items"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
	for name, pair := range map[string][2]int{
		"permissions":       {spec["permissions"].MaxItems, MaxStatements},
		"actions":           {spec["permissions"].Items.Properties["actions"].MaxItems, MaxStatementItems},
		"resources":         {spec["permissions"].Items.Properties["resources"].MaxItems, MaxStatementItems},
		"managedPolicyArns": {spec["managedPolicyArns"].MaxItems, MaxManagedPolicies},
		"tags":              {spec["tags"].MaxProperties, MaxSpecTags},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: the CRD allows %d, SchemaLimit %d", name, pair[0], pair[1])
		}
	}
}

// Identity mechanisms: Pod Identity needs the operator to provide it; a
// guardrail's allowedIdentities restricts which one a namespace may use,
// evaluated whatever else is wrong with the spec, and narrowing keeps the
// mechanism in effect when it is allowed.
func TestIdentities(t *testing.T) {
	pi := binding(allow([]string{"dynamodb:GetItem"}, "*"))
	pi.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	if r := checker.Check(pi, nil, nil); !strings.Contains(Message(r.Invalid), "--eks-cluster-name") {
		t.Errorf("EKSPodIdentity without the operator's --eks-cluster-name: %v", r.Invalid)
	}
	c := checker
	c.RoleConfig.PodIdentity = &identity.PodIdentity{Account: "123456789012", ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/dev"}
	irsaOnly := []Rule{{Name: "irsa-only", AllowedIdentities: []v1alpha1.Identity{v1alpha1.IdentityIRSA}}}
	r := c.Check(pi, irsaOnly, nil)
	if len(r.Invalid) > 0 || !strings.Contains(Message(r.Violations), "EKSPodIdentity is not allowed") {
		t.Fatalf("EKSPodIdentity under an IRSA-only guardrail: invalid %v, violations %v", r.Invalid, r.Violations)
	}
	if n := r.Narrow(pi); n.Spec.Identity != v1alpha1.IdentityIRSA {
		t.Errorf("narrowed to %q, want IRSA", n.Spec.Identity)
	}
	// The default mechanism counts as asked for.
	c.RoleConfig.DefaultIdentity = v1alpha1.IdentityEKSPodIdentity
	if r := c.Check(binding(allow([]string{"dynamodb:GetItem"}, "*")), irsaOnly, nil); len(r.Violations) != 1 {
		t.Errorf("the default EKSPodIdentity under an IRSA-only guardrail: %v", r.Violations)
	}
	// Evaluated even when the spec is invalid (like the other switches).
	typo := binding(allow([]string{"dynamodb:GetItemz"}, "*"))
	typo.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	if r := c.Check(typo, irsaOnly, nil); len(r.Invalid) == 0 || len(r.Violations) != 1 {
		t.Errorf("invalid spec and forbidden mechanism: invalid %v violations %v", r.Invalid, r.Violations)
	}
	// Narrowing keeps the mechanism in effect when allowed.
	both := []Rule{{Name: "pi-only", AllowedIdentities: []v1alpha1.Identity{v1alpha1.IdentityEKSPodIdentity}}}
	irsa := binding(allow([]string{"dynamodb:GetItem"}, "*"))
	irsa.Spec.Identity = v1alpha1.IdentityIRSA
	irsa.Status.Identity = v1alpha1.IdentityEKSPodIdentity
	if n := c.Check(irsa, both, nil).Narrow(irsa); n.Spec.Identity != v1alpha1.IdentityEKSPodIdentity {
		t.Errorf("narrowed to %q, want the mechanism in effect", n.Spec.Identity)
	}
}

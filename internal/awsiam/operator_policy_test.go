package awsiam_test

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/eksassoc"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

func readPolicy(t *testing.T, name string) policy.Document {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "iam", name))
	if err != nil {
		t.Fatal(err)
	}
	d, err := policy.Parse(string(raw))
	if err != nil {
		t.Fatalf("%s does not parse: %v", name, err)
	}
	return d
}

// unscopable are the read calls IAM does not authorize per resource.
var unscopable = map[string]bool{"iam:GetAccountAuthorizationDetails": true, "iam:ListRoles": true}

// TestOperatorPolicyMatchesTheCode keeps config/iam/operator-policy.json
// least-privilege and in step with what the operator calls.
func TestOperatorPolicyMatchesTheCode(t *testing.T) {
	d := readPolicy(t, "operator-policy.json")

	granted := map[string]bool{}
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: unexpected effect %s", s.Sid, s.Effect)
		}
		for _, a := range s.Action {
			granted[a] = true
			if strings.Contains(a, "*") {
				t.Errorf("statement %s grants a wildcard action %s", s.Sid, a)
			}
		}
		for _, r := range s.Resource {
			// Only the account-wide reads of the drift sweep, which IAM
			// cannot scope to resources, may apply to every resource.
			if r == "*" && !slices.ContainsFunc(s.Action, func(a string) bool { return !unscopable[a] }) {
				continue
			}
			if r == "*" {
				t.Errorf("statement %s applies to every resource", s.Sid)
			}
		}
	}

	// Every IAM operation of the narrow interface, plus the start-up check.
	called := map[string]bool{"iam:GetOpenIDConnectProvider": true}
	api := reflect.TypeOf((*awsiam.API)(nil)).Elem()
	for i := range api.NumMethod() {
		called["iam:"+api.Method(i).Name] = true
	}
	if g, c := slices.Sorted(maps.Keys(granted)), slices.Sorted(maps.Keys(called)); !slices.Equal(g, c) {
		t.Errorf("the policy grants %v\nbut the code calls %v", g, c)
	}
	for _, forbidden := range []string{"iam:PassRole", "iam:DeleteRolePermissionsBoundary", "iam:CreateUser", "iam:CreatePolicy",
		"iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider", "iam:AddUserToGroup"} {
		if granted[forbidden] {
			t.Errorf("the policy grants %s", forbidden)
		}
	}
	for a := range granted {
		if strings.Contains(a, "User") || strings.Contains(a, "Group") || (strings.Contains(a, "OpenIDConnectProvider") && a != "iam:GetOpenIDConnectProvider") {
			t.Errorf("the policy grants %s", a)
		}
	}

	writes := 0
	for _, s := range d.Statement {
		for _, a := range s.Action {
			read := strings.HasPrefix(a, "iam:Get") || strings.HasPrefix(a, "iam:List")
			if read {
				if a == "iam:GetPolicy" || a == "iam:GetPolicyVersion" {
					for _, r := range s.Resource {
						if !strings.Contains(r, ":policy/") {
							t.Errorf("%s is granted on %s, not only on policies", a, r)
						}
					}
				}
				continue
			}
			writes++
			// Writes only under the operator's default role path...
			for _, r := range s.Resource {
				if !strings.HasSuffix(r, ":role/podidentity/*") || "/podidentity/" != defaultRolePath {
					t.Errorf("%s is granted on %s, outside the role path %s", a, r, defaultRolePath)
				}
			}
			// ...and only on this cluster's roles, with its ownership tag key.
			eq := s.Condition["StringEquals"]
			if first(eq["aws:ResourceTag/"+role.TagCluster]) != "${CLUSTER_NAME}" && first(eq["aws:RequestTag/"+role.TagCluster]) != "${CLUSTER_NAME}" {
				t.Errorf("%s (statement %s) is not conditioned on the ownership tag %s", a, s.Sid, role.TagCluster)
			}
			// Every call that can grant (create, write permissions or trust,
			// attach, set the boundary) requires the configured boundary.
			switch a {
			case "iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy":
				if first(eq["iam:PermissionsBoundary"]) != "${BOUNDARY_ARN}" {
					t.Errorf("%s does not require the configured permissions boundary", a)
				}
			}
			switch a {
			case "iam:CreateRole":
				// Every role it creates names its binding (issue 17, defect 12).
				requireOwnershipTags(t, s)
			case "iam:AttachRolePolicy":
				// Only AWS's and this account's policies, never the
				// administrative ones or the boundary itself.
				if l := s.Condition["ArnLike"]["iam:PolicyARN"]; len(l) != 2 {
					t.Errorf("AttachRolePolicy is not limited to this partition's policies: %v", l)
				}
				not := s.Condition["ArnNotEquals"]["iam:PolicyARN"]
				for _, p := range []string{"arn:${PARTITION}:iam::aws:policy/AdministratorAccess", "arn:${PARTITION}:iam::aws:policy/IAMFullAccess", "${BOUNDARY_ARN}"} {
					if !slices.Contains(not, p) {
						t.Errorf("AttachRolePolicy may attach %s", p)
					}
				}
			case "iam:TagRole":
				// Tagging can never move a role to another cluster; an
				// untagged role (being created, or whose tags were removed
				// out of band) can only be tagged as one binding of this
				// cluster, all ownership tags at once.
				untagged := first(s.Condition["Null"]["aws:ResourceTag/"+role.TagCluster]) == "true"
				switch {
				case untagged:
					if first(eq["aws:RequestTag/"+role.TagCluster]) != "${CLUSTER_NAME}" {
						t.Errorf("TagRole (statement %s) on untagged roles can set another cluster", s.Sid)
					}
					requireOwnershipTags(t, s)
				case first(s.Condition["StringEqualsIfExists"]["aws:RequestTag/"+role.TagCluster]) != "${CLUSTER_NAME}":
					t.Errorf("TagRole (statement %s) can set %s to another cluster", s.Sid, role.TagCluster)
				}
			case "iam:UntagRole":
				keys := s.Condition["ForAllValues:StringNotEqualsIgnoreCase"]["aws:TagKeys"]
				for _, k := range []string{role.TagCluster, role.TagNamespace, role.TagBinding} {
					if !slices.Contains(keys, k) {
						t.Errorf("UntagRole can remove the ownership tag %s", k)
					}
				}
			}
		}
	}
	if writes == 0 {
		t.Fatal("no write statements found: is the policy read correctly?")
	}
}

// requireOwnershipTags fails unless the statement requires the request to
// carry the namespace and binding ownership tags.
func requireOwnershipTags(t *testing.T, s policy.Statement) {
	t.Helper()
	for _, k := range []string{role.TagNamespace, role.TagBinding} {
		if first(s.Condition["Null"]["aws:RequestTag/"+k]) != "false" {
			t.Errorf("statement %s does not require the tag %s", s.Sid, k)
		}
	}
}

// defaultRolePath mirrors the --role-path default (cmd/operator); the
// test in cmd/operator pins that default.
const defaultRolePath = "/podidentity/"

func TestOperatorTrustPolicy(t *testing.T) {
	d := readPolicy(t, "operator-trust-policy.json")
	if len(d.Statement) != 1 {
		t.Fatalf("%d statements", len(d.Statement))
	}
	s := d.Statement[0]
	eq := s.Condition["StringEquals"]
	if got := eq["${OIDC_ISSUER}:sub"]; len(got) != 1 || got[0] != "system:serviceaccount:podidentity-system:podidentity-controller-manager" {
		t.Errorf("sub = %v: must be exactly the operator's ServiceAccount from config/default", got)
	}
	if got := eq["${OIDC_ISSUER}:aud"]; len(got) != 1 || got[0] != "sts.amazonaws.com" {
		t.Errorf("aud = %v", got)
	}
	if len(s.Action) != 1 || s.Action[0] != "sts:AssumeRoleWithWebIdentity" || s.Condition["StringLike"] != nil {
		t.Errorf("trust must allow only AssumeRoleWithWebIdentity with StringEquals: %+v", s)
	}
}

func first(l policy.StringList) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// TestPodIdentityPolicyMatchesTheCode keeps
// config/iam/operator-policy-pod-identity.json (attached only with
// --eks-cluster-name) to exactly the EKS calls the code makes, on this
// cluster's associations, and iam:PassRole only for this cluster's roles and
// only to EKS Pod Identity.
func TestPodIdentityPolicyMatchesTheCode(t *testing.T) {
	d := readPolicy(t, "operator-policy-pod-identity.json")
	granted := map[string]bool{}
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: unexpected effect %s", s.Sid, s.Effect)
		}
		for _, r := range s.Resource {
			if !strings.Contains(r, ":cluster/${CLUSTER_NAME}") && !strings.Contains(r, ":podidentityassociation/${CLUSTER_NAME}/") &&
				r != "arn:${PARTITION}:iam::${ACCOUNT_ID}:role/podidentity/*" {
				t.Errorf("statement %s applies to %s, not only this cluster's associations and roles", s.Sid, r)
			}
		}
		eq := s.Condition["StringEquals"]
		for _, a := range s.Action {
			granted[a] = true
			switch a {
			case "eks:CreatePodIdentityAssociation":
				if first(eq["aws:RequestTag/"+role.TagCluster]) != "${CLUSTER_NAME}" {
					t.Errorf("%s does not require this cluster's ownership tag", a)
				}
				requireOwnershipTags(t, s)
			case "eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation":
				if first(eq["aws:ResourceTag/"+role.TagCluster]) != "${CLUSTER_NAME}" {
					t.Errorf("%s is not limited to this cluster's associations", a)
				}
			case "eks:TagResource":
				// On create (all ownership tags), or to mark a Retain record.
				if first(eq["aws:RequestTag/"+role.TagCluster]) != "${CLUSTER_NAME}" &&
					!(first(eq["aws:ResourceTag/"+role.TagCluster]) == "${CLUSTER_NAME}" &&
						slices.Equal(s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"], policy.StringList{role.TagRetained})) {
					t.Errorf("eks:TagResource (statement %s) can set tags other than this cluster's", s.Sid)
				}
			case "iam:PassRole":
				if first(eq["iam:PassedToService"]) != "pods.eks.amazonaws.com" || first(eq["aws:ResourceTag/"+role.TagCluster]) != "${CLUSTER_NAME}" {
					t.Errorf("iam:PassRole is not limited to this cluster's roles passed to EKS Pod Identity: %v", s.Condition)
				}
			}
		}
	}
	called := map[string]bool{"eks:DescribeCluster": true, "iam:PassRole": true}
	api := reflect.TypeOf((*eksassoc.API)(nil)).Elem()
	for i := range api.NumMethod() {
		called["eks:"+api.Method(i).Name] = true
	}
	if g, c := slices.Sorted(maps.Keys(granted)), slices.Sorted(maps.Keys(called)); !slices.Equal(g, c) {
		t.Errorf("the policy grants %v\nbut the code calls %v", g, c)
	}
}

// TestAccountPolicies: the operator's own role may assume exactly one
// account role per policy (no wildcard), and the account role trusts
// exactly the operator's role, only with the external ID (issue 20).
func TestAccountPolicies(t *testing.T) {
	d := readPolicy(t, "operator-policy-account.json")
	if len(d.Statement) != 1 {
		t.Fatalf("%d statements", len(d.Statement))
	}
	s := d.Statement[0]
	if s.Effect != "Allow" || !slices.Equal(s.Action, policy.StringList{"sts:AssumeRole"}) ||
		!slices.Equal(s.Resource, policy.StringList{"${ACCOUNT_ROLE_ARN}"}) {
		t.Errorf("operator-policy-account.json grants %s %v on %v; want only sts:AssumeRole on the one account role", s.Effect, s.Action, s.Resource)
	}
	trust := readPolicy(t, "account-role-trust-policy.json")
	if len(trust.Statement) != 1 {
		t.Fatalf("%d trust statements", len(trust.Statement))
	}
	ts := trust.Statement[0]
	if ts.Effect != "Allow" || !reflect.DeepEqual(ts.Principal, policy.Principal{"AWS": {"${OPERATOR_ROLE_ARN}"}}) ||
		!slices.Equal(ts.Action, policy.StringList{"sts:AssumeRole"}) {
		t.Errorf("account-role-trust-policy.json: %+v", ts)
	}
	if got := ts.Condition["StringEquals"]["sts:ExternalId"]; !slices.Equal(got, policy.StringList{"${EXTERNAL_ID}"}) {
		t.Errorf("the account role is assumable without the external ID: %+v", ts.Condition)
	}
}

package planner

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

var cfg = role.Config{ClusterName: "dev", RolePath: "/podidentity/",
	ProviderARN: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X", Issuer: "oidc.example.com/id/X"}

var checker = guard.Checker{Catalog: catalog.Default(), Builtins: true, RoleConfig: cfg}

const table = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"

func binding(ns, name, sa string, actions ...string) *v1alpha1.PodIdentityBinding {
	return &v1alpha1.PodIdentityBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: sa, DeletionPolicy: v1alpha1.DeletionPolicyDelete,
			Permissions: []v1alpha1.PermissionStatement{{Effect: v1alpha1.EffectAllow, Actions: actions, Resources: []string{table}}}},
	}
}

// observed is the role IAM would hold after applying b's desired state.
func observed(b *v1alpha1.PodIdentityBinding, name, id string) *role.Observed {
	d := role.DesiredFor(cfg, b)
	o := &role.Observed{ARN: "arn:aws:iam::123456789012:role/podidentity/" + name, ID: id, Path: d.Path, Description: d.Description,
		MaxSessionDuration: d.MaxSessionDuration, Trust: d.Trust.Fingerprint(), Tags: d.Tags, ManagedPolicies: d.ManagedPolicies}
	if d.Permissions != nil {
		o.Inline = o.Inline.Set(role.InlinePolicyName, role.InlineOf(*d.Permissions))
	}
	return o
}

// withStatus records name/id as the binding's current role.
func withStatus(b *v1alpha1.PodIdentityBinding, name, id, sa string) *v1alpha1.PodIdentityBinding {
	b.Status.RoleName, b.Status.RoleID, b.Status.ServiceAccountName = name, id, sa
	b.Status.OwnedRoles = []v1alpha1.RoleReference{{Name: name, ID: id}}
	return b
}

func ops(as []Action) map[string]Op {
	m := map[string]Op{}
	for _, a := range as {
		m[a.Name] = a.Op
	}
	return m
}

// TestEveryWriteTargetsAnOwnedRole is the planner's ownership invariant: no
// action names a role the binding does not own, except a create of a name
// that has no role.
func TestEveryWriteTargetsAnOwnedRole(t *testing.T) {
	victim := binding("team-b", "orders", "orders", "dynamodb:GetItem")
	victimRole := role.Name(cfg, victim)
	foreign := &role.Observed{ARN: "arn:aws:iam::123456789012:role/admin", ID: "AROAFOREIGN", Tags: map[string]string{}}

	attacker := withStatus(binding("team-a", "app", "app", "dynamodb:GetItem"), "dev_team-a_app", "AROAMINE", "app")
	mine := observed(attacker, "dev_team-a_app", "AROAMINE")

	cases := map[string]func(b *v1alpha1.PodIdentityBinding){
		"roleName is another binding's role": func(b *v1alpha1.PodIdentityBinding) { b.Spec.RoleName = victimRole },
		"roleName is a foreign role":         func(b *v1alpha1.PodIdentityBinding) { b.Spec.RoleName = "admin" },
		"roleName is another binding's role plus a typo": func(b *v1alpha1.PodIdentityBinding) {
			b.Spec.RoleName = victimRole
			b.Spec.Permissions[0].Actions = []string{"dynamodb:GetItemz"}
		},
		"roleName is another binding's role plus iam:*": func(b *v1alpha1.PodIdentityBinding) {
			b.Spec.RoleName = victimRole
			b.Spec.Permissions[0].Actions = []string{"iam:*"}
		},
		"roleName is another binding's role and deleting": func(b *v1alpha1.PodIdentityBinding) {
			b.Spec.RoleName = victimRole
			now := metav1.Now()
			b.DeletionTimestamp = &now
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := attacker.DeepCopy()
			mutate(b)
			roles := map[string]*role.Observed{"dev_team-a_app": mine, victimRole: observed(victim, victimRole, "AROAVICTIM"), "admin": foreign}
			p := Compute(Input{Binding: b, Config: cfg, Guard: checker, Managed: guard.Managed{}, Roles: roles})
			for _, a := range append(append([]Action(nil), p.Before...), p.After...) {
				if a.Name == victimRole || a.Name == "admin" {
					t.Errorf("%s targets %s, which the binding does not own", a.Op, a.Name)
				}
			}
			if _, ok := p.Owned[victimRole]; ok {
				t.Errorf("the victim's role counts as owned")
			}
		})
	}
}

func TestPlans(t *testing.T) {
	base := func() *v1alpha1.PodIdentityBinding {
		return withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROA1", "app")
	}
	current := func(b *v1alpha1.PodIdentityBinding) *role.Observed { return observed(b, "dev_ns_app", "AROA1") }
	// with is base() changed by each mutation in turn.
	with := func(mutations ...func(b *v1alpha1.PodIdentityBinding)) func() *v1alpha1.PodIdentityBinding {
		return func() *v1alpha1.PodIdentityBinding {
			b := base()
			for _, m := range mutations {
				m(b)
			}
			return b
		}
	}
	retainPolicy := func(b *v1alpha1.PodIdentityBinding) { b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain }
	beingDeleted := func(b *v1alpha1.PodIdentityBinding) { now := metav1.Now(); b.DeletionTimestamp = &now }
	typo := func(b *v1alpha1.PodIdentityBinding) { b.Spec.Permissions[0].Actions = []string{"dynamodb:GetItemz"} }
	roleName := func(n string) func(b *v1alpha1.PodIdentityBinding) {
		return func(b *v1alpha1.PodIdentityBinding) { b.Spec.RoleName = n }
	}
	// onlyCurrent: IAM holds the binding's current role, in sync with b.
	onlyCurrent := func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
		return map[string]*role.Observed{"dev_ns_app": current(b)}
	}
	foreign := &role.Observed{ID: "AROAF", Tags: map[string]string{}}

	tests := []struct {
		name        string
		b           func() *v1alpha1.PodIdentityBinding
		roles       func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed
		holder      string
		curHolder   string
		rules       []guard.Rule
		managed     guard.Managed
		provider    *oidcprovider.State
		wantReason  string
		wantCurrent string
		wantBefore  map[string]Op
		wantAfter   map[string]Op
		check       func(t *testing.T, p Plan)
	}{
		{
			name:        "new binding is created",
			b:           func() *v1alpha1.PodIdentityBinding { return binding("ns", "app", "app", "dynamodb:GetItem") },
			roles:       func(*v1alpha1.PodIdentityBinding) map[string]*role.Observed { return map[string]*role.Observed{} },
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpCreate},
		},
		{
			name:        "the OIDC provider is registered with the binding's audience",
			b:           base,
			roles:       onlyCurrent,
			provider:    &oidcprovider.State{ARN: cfg.ProviderARN, Known: true, Exists: true, Audiences: []string{"sts.amazonaws.com"}},
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name:        "OIDC provider missing: the role is still applied, the binding is not Ready",
			b:           base,
			roles:       onlyCurrent,
			provider:    &oidcprovider.State{ARN: cfg.ProviderARN, Known: true},
			wantReason:  v1alpha1.ReasonOIDCProviderMissing,
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if !p.Applied || !strings.Contains(p.Message, "https://oidc.example.com/id/X") {
					t.Errorf("applied = %v, message = %s", p.Applied, p.Message)
				}
			},
		},
		{
			name: "audience not registered: a custom audience the provider does not list",
			b: with(func(b *v1alpha1.PodIdentityBinding) {
				b.Spec.ServiceAccountToken = &v1alpha1.ServiceAccountTokenSettings{Audience: "vault"}
			}),
			roles:       onlyCurrent,
			provider:    &oidcprovider.State{ARN: cfg.ProviderARN, Known: true, Exists: true, Audiences: []string{"sts.amazonaws.com"}},
			wantReason:  v1alpha1.ReasonAudienceNotRegistered,
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name:        "provider unreadable: rejected reads say which permission is missing",
			b:           base,
			roles:       onlyCurrent,
			provider:    &oidcprovider.State{ARN: cfg.ProviderARN, Rejected: true, Err: errors.New("AccessDenied")},
			wantReason:  v1alpha1.ReasonIAMRequestRejected,
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if !strings.Contains(p.Message, "iam:GetOpenIDConnectProvider") {
					t.Errorf("message = %s", p.Message)
				}
			},
		},
		{
			name:        "a guardrail violation outranks a missing provider",
			b:           base,
			roles:       onlyCurrent,
			rules:       []guard.Rule{{Name: "no-dynamodb", DeniedActions: []string{"dynamodb:*"}}},
			provider:    &oidcprovider.State{ARN: cfg.ProviderARN, Known: true},
			wantReason:  v1alpha1.ReasonGuardrailViolation,
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name:        "in sync: an empty update",
			b:           base,
			roles:       onlyCurrent,
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if !p.Before[0].Diff.Empty() {
					t.Errorf("diff = %v", p.Before[0].Diff.Changes())
				}
			},
		},
		{
			name: "defect 2: roleName points at a foreign role; the current role still follows the spec and guardrails",
			b:    with(roleName("ns_admin")),
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				old := base()
				old.Spec.Permissions[0].Actions = []string{"dynamodb:GetItem", "dynamodb:PutItem"}
				return map[string]*role.Observed{"dev_ns_app": current(old), "ns_admin": foreign}
			},
			rules:      []guard.Rule{{Name: "no-writes", DeniedActions: []string{"dynamodb:PutItem"}}},
			wantReason: v1alpha1.ReasonRoleConflict, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if !p.Before[0].Diff.PutPermissions {
					t.Errorf("the current role keeps permissions the spec dropped: %v", p.Before[0].Diff.Changes())
				}
			},
		},
		{
			name:       "defect 3: losing the ServiceAccount deletes the role (Delete)",
			b:          base,
			roles:      onlyCurrent,
			holder:     "older",
			wantReason: v1alpha1.ReasonServiceAccountConflict, wantBefore: map[string]Op{"dev_ns_app": OpDelete},
		},
		{
			name:       "defect 3: losing the ServiceAccount parks the role (Retain)",
			b:          with(retainPolicy),
			roles:      onlyCurrent,
			holder:     "older",
			wantReason: v1alpha1.ReasonServiceAccountConflict, wantBefore: map[string]Op{"dev_ns_app": OpPark},
			check: func(t *testing.T, p Plan) {
				d := p.Before[0].Diff
				if !d.UpdateTrust || len(d.DeleteInline) != 1 {
					t.Errorf("park must rewrite trust and delete permissions: %v", d.Changes())
				}
			},
		},
		{
			name: "defect 4: a half-created role recorded in ownedRoles is cleaned up after a rename",
			b: func() *v1alpha1.PodIdentityBinding {
				b := base()
				b.Status.OwnedRoles = append(b.Status.OwnedRoles, v1alpha1.RoleReference{Name: "half", ID: "AROAH"})
				return b
			},
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				h := base()
				h.Spec.RoleName = "half"
				return map[string]*role.Observed{"dev_ns_app": current(b), "half": observed(h, "half", "AROAH")}
			},
			wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate}, wantAfter: map[string]Op{"half": OpDelete},
		},
		{
			name: "rename with Retain leaves a Retain record",
			b:    with(roleName("ns_renamed"), retainPolicy),
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				return map[string]*role.Observed{"dev_ns_app": current(base()), "ns_renamed": nil}
			},
			wantCurrent: "ns_renamed", wantBefore: map[string]Op{"ns_renamed": OpCreate}, wantAfter: map[string]Op{"dev_ns_app": OpRetain},
		},
		{
			name: "invalid spec: the current role keeps only what the spec also declares",
			b:    with(typo),
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				return map[string]*role.Observed{"dev_ns_app": current(base())}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if d := p.Before[0].Diff; len(d.DeleteInline) != 1 {
					t.Errorf("the statement the spec no longer declares stays: %v", d.Changes())
				}
			},
		},
		{
			name: "invalid spec: out-of-band trust widening is still corrected",
			b:    with(typo),
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				o := current(base())
				widened := role.DesiredFor(cfg, base()).Trust
				widened.Statement[0].Condition = policy.Condition{"StringLike": {cfg.Issuer + ":sub": {"*"}}}
				o.Trust = widened.Fingerprint()
				return map[string]*role.Observed{"dev_ns_app": o}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if !p.Before[0].Diff.UpdateTrust {
					t.Errorf("trust not corrected: %v", p.Before[0].Diff.Changes())
				}
			},
		},
		{
			name: "defect 5: AdministratorAccess is never attached",
			b: func() *v1alpha1.PodIdentityBinding {
				b := binding("ns", "app", "app", "dynamodb:GetItem")
				b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/AdministratorAccess"}
				return b
			},
			roles: func(*v1alpha1.PodIdentityBinding) map[string]*role.Observed { return map[string]*role.Observed{} },
			managed: guard.Managed{"arn:aws:iam::aws:policy/AdministratorAccess": {Document: policy.Document{Statement: []policy.Statement{
				{Effect: "Allow", Action: policy.StringList{"*"}, Resource: policy.StringList{"*"}}}}}},
			wantReason: v1alpha1.ReasonGuardrailViolation,
		},
		{
			name: "defect 5: an unreadable managed policy fails closed on an existing role",
			b: func() *v1alpha1.PodIdentityBinding {
				b := base()
				b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::123456789012:policy/gone"}
				return b
			},
			roles:      onlyCurrent,
			managed:    guard.Managed{},
			wantReason: v1alpha1.ReasonGuardrailViolation, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if d := p.Before[0].Diff; len(d.Detach) != 1 {
					t.Errorf("the unreadable policy stays attached: %v", d.Changes())
				}
			},
		},
		{
			name:       "deleting with Retain tags every owned role",
			b:          with(retainPolicy, beingDeleted),
			roles:      onlyCurrent,
			wantReason: v1alpha1.ReasonDeleting, wantBefore: map[string]Op{"dev_ns_app": OpRetain},
			check: func(t *testing.T, p Plan) {
				if d := p.Before[0].Diff; d.Empty() || d.SetTags[role.TagRetained] != "true" {
					t.Errorf("the retained role is not tagged: %v", d.Changes())
				}
			},
		},
		{
			name:       "deleting when a guardrail forbids Retain deletes",
			b:          with(retainPolicy, beingDeleted),
			rules:      []guard.Rule{{Name: "no-retain", ForbidRetain: true}},
			roles:      onlyCurrent,
			wantReason: v1alpha1.ReasonDeleting, wantBefore: map[string]Op{"dev_ns_app": OpDelete},
		},
		{
			name:       "issue 17 defect 2: an invalid spec does not skip forbidRetain (typo + Retain + delete)",
			b:          with(typo, retainPolicy, beingDeleted),
			rules:      []guard.Rule{{Name: "no-retain", ForbidRetain: true}},
			roles:      onlyCurrent,
			wantReason: v1alpha1.ReasonDeleting, wantBefore: map[string]Op{"dev_ns_app": OpDelete},
		},
		{
			name:  "issue 17 defect 2: an invalid rename never creates a role outside roleNamePattern",
			b:     with(typo, roleName("other-team-role")),
			rules: []guard.Rule{{Name: "names", RoleNamePattern: "ns-*"}},
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				return map[string]*role.Observed{"dev_ns_app": current(base()), "other-team-role": nil}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name:  "issue 17 defect 3: an invalid spec that moved away loses the ServiceAccount it serves to an older claimant",
			b:     with(typo, func(b *v1alpha1.PodIdentityBinding) { b.Spec.ServiceAccountName = "y" }),
			roles: onlyCurrent, curHolder: "older",
			wantReason: v1alpha1.ReasonServiceAccountConflict, wantBefore: map[string]Op{"dev_ns_app": OpDelete},
			check: func(t *testing.T, p Plan) {
				if !strings.Contains(p.Message, "ServiceAccount app is already bound by PodIdentityBinding older") {
					t.Errorf("message = %s", p.Message)
				}
			},
		},
		{
			name:       "issue 17 defect 3: an invalid spec keeps serving its ServiceAccount while nobody older claims it",
			b:          with(typo, func(b *v1alpha1.PodIdentityBinding) { b.Spec.ServiceAccountName = "y" }),
			roles:      onlyCurrent,
			wantReason: v1alpha1.ReasonInvalidSpec, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
			check: func(t *testing.T, p Plan) {
				if p.ServiceAccount != "app" {
					t.Errorf("serves %q, want the ServiceAccount its role trusts (app)", p.ServiceAccount)
				}
			},
		},
		{
			name: "issue 17 defect 1: the message of 1,000 escalating actions is bounded",
			b: func() *v1alpha1.PodIdentityBinding {
				b := binding("ns", "app", "app")
				b.Spec.Permissions = nil
				for i := 0; i < 10; i++ {
					st := v1alpha1.PermissionStatement{Effect: v1alpha1.EffectAllow, Resources: []string{"*"}}
					for j := 0; j < 100; j++ {
						st.Actions = append(st.Actions, "iam:*")
					}
					b.Spec.Permissions = append(b.Spec.Permissions, st)
				}
				return b
			},
			roles:      func(*v1alpha1.PodIdentityBinding) map[string]*role.Observed { return map[string]*role.Observed{} },
			wantReason: v1alpha1.ReasonGuardrailViolation,
			check: func(t *testing.T, p Plan) {
				if len(p.Message) > 8192 || !strings.Contains(p.Message, "more (") {
					t.Errorf("message is %d bytes: %.300s", len(p.Message), p.Message)
				}
			},
		},
		{
			name: "issue 17 defect 8: a roleName in another namespace's generated names is never created",
			b:    with(roleName("dev_payments_api")),
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				return map[string]*role.Observed{"dev_ns_app": current(base()), "dev_payments_api": nil}
			},
			wantReason: v1alpha1.ReasonGuardrailViolation, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name:  "a roleName outside the guardrail's pattern keeps the current role",
			b:     with(roleName("ns_other-team-role")),
			rules: []guard.Rule{{Name: "names", RoleNamePattern: "ns_team-*"}},
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				return map[string]*role.Observed{"dev_ns_app": current(base())}
			},
			wantReason: v1alpha1.ReasonGuardrailViolation, wantCurrent: "dev_ns_app", wantBefore: map[string]Op{"dev_ns_app": OpUpdate},
		},
		{
			name: "a Retain record is never adopted by its tags",
			b:    func() *v1alpha1.PodIdentityBinding { return binding("ns", "app", "app", "dynamodb:GetItem") },
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				o := observed(b, "dev_ns_app", "AROAOLD")
				o.Tags[role.TagRetained] = "true"
				return map[string]*role.Observed{"dev_ns_app": o}
			},
			wantReason: v1alpha1.ReasonRoleConflict,
			check: func(t *testing.T, p Plan) {
				if len(p.Owned) != 0 {
					t.Errorf("owned = %v", p.Owned)
				}
			},
		},
		{
			name: "defect 8: a case-variant ownership tag from another cluster is not ownership",
			b:    func() *v1alpha1.PodIdentityBinding { return binding("ns", "app", "app", "dynamodb:GetItem") },
			roles: func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
				o := observed(b, "dev_ns_app", "AROAX")
				o.Tags["PodIdentity.io/Cluster"] = "other"
				return map[string]*role.Observed{"dev_ns_app": o}
			},
			wantReason: v1alpha1.ReasonRoleConflict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b()
			p := Compute(Input{Binding: b, Config: cfg, Guard: checker, Rules: tt.rules, Managed: orEmpty(tt.managed), Holder: tt.holder, CurrentHolder: tt.curHolder, Roles: tt.roles(b), Provider: tt.provider})
			if tt.wantReason == "" && !p.Ready {
				t.Fatalf("not ready: %s: %s", p.Reason, p.Message)
			}
			if tt.wantReason != "" && p.Reason != tt.wantReason {
				t.Fatalf("reason = %q (%s), want %q", p.Reason, p.Message, tt.wantReason)
			}
			if p.Current != tt.wantCurrent {
				t.Errorf("current = %q, want %q", p.Current, tt.wantCurrent)
			}
			if got := ops(p.Before); !equalOps(got, tt.wantBefore) {
				t.Errorf("before = %v, want %v", got, tt.wantBefore)
			}
			if got := ops(p.After); !equalOps(got, tt.wantAfter) {
				t.Errorf("after = %v, want %v", got, tt.wantAfter)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func orEmpty(m guard.Managed) guard.Managed {
	if m == nil {
		return guard.Managed{}
	}
	return m
}

func equalOps(a, b map[string]Op) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

package planner

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
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
			checkShape(t, b, p)
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
			checkShape(t, b, p)
		})
	}
}

// checkShape holds every plan to the shape the reconciler relies on: one
// ServiceAccount step, the finalizer only when deleting, and conditions
// that say what the plan says.
func checkShape(t *testing.T, b *v1alpha1.PodIdentityBinding, p Plan) {
	t.Helper()
	deleting := !b.DeletionTimestamp.IsZero()
	if (p.Bind == nil) == (p.Release == nil) {
		t.Errorf("bind = %+v, release = %+v: exactly one must be set", p.Bind, p.Release)
	}
	if (p.Bind != nil) != (p.Current != "" && !deleting) {
		t.Errorf("bind = %+v with current %q (deleting %v)", p.Bind, p.Current, deleting)
	}
	if p.Bind != nil && (p.Bind.ServiceAccount != p.ServiceAccount || p.Bind.Identity != p.Identity || p.Bind.Identity == "") {
		t.Errorf("bind = %+v, plan binds %s with %q", p.Bind, p.ServiceAccount, p.Identity)
	}
	if p.RemoveFinalizer != deleting {
		t.Errorf("removeFinalizer = %v, deleting = %v", p.RemoveFinalizer, deleting)
	}
	if p.Policy == "" {
		t.Errorf("no policy named")
	}
	ready := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionReady)
	if ready == nil {
		t.Fatalf("no Ready condition in %+v", p.Conditions)
	}
	if (ready.Status == metav1.ConditionTrue) != p.Ready {
		t.Errorf("Ready condition %s, plan ready %v", ready.Status, p.Ready)
	}
	if !p.Ready && (ready.Reason != p.Reason || ready.Message != p.Message) {
		t.Errorf("Ready condition %s: %s, plan %s: %s", ready.Reason, ready.Message, p.Reason, p.Message)
	}
	if deleting {
		if len(p.Conditions) != 1 {
			t.Errorf("deleting: conditions %+v", p.Conditions)
		}
		return
	}
	sa := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionServiceAccountSynced)
	if sa == nil || (sa.Status == metav1.ConditionTrue) != (p.Bind != nil) {
		t.Errorf("ServiceAccountSynced %+v with bind %+v", sa, p.Bind)
	}
	rs := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionRoleSynced)
	if rs == nil || (rs.Status == metav1.ConditionTrue) != (p.Ready || p.Applied) {
		t.Errorf("RoleSynced %+v, ready %v, applied %v", rs, p.Ready, p.Applied)
	}
}

// TestPolicyChain tests each policy alone: what it decides and what it
// leaves to the next one.
func TestPolicyChain(t *testing.T) {
	current := func() *v1alpha1.PodIdentityBinding {
		return withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROA1", "app")
	}
	roles := func(b *v1alpha1.PodIdentityBinding) map[string]*role.Observed {
		return map[string]*role.Observed{"dev_ns_app": observed(b, "dev_ns_app", "AROA1")}
	}
	in := func(b *v1alpha1.PodIdentityBinding, mutate ...func(*Input)) Input {
		i := Input{Binding: b, Config: cfg, Guard: checker, Managed: guard.Managed{}, Roles: roles(b)}
		for _, m := range mutate {
			m(&i)
		}
		return i
	}
	deleted := func() *v1alpha1.PodIdentityBinding {
		b := current()
		now := metav1.Now()
		b.DeletionTimestamp = &now
		return b
	}
	typo := func() *v1alpha1.PodIdentityBinding {
		b := current()
		b.Spec.Permissions[0].Actions = []string{"dynamodb:GetItemz"}
		return b
	}
	renamed := func(name string) *v1alpha1.PodIdentityBinding {
		b := current()
		b.Spec.RoleName = name
		return b
	}
	foreign := func(i *Input) { i.Roles["ns_taken"] = &role.Observed{ID: "AROAF", Tags: map[string]string{}} }
	held := func(i *Input) { i.Holder = "older" }
	denyDynamo := func(i *Input) { i.Rules = []guard.Rule{{Name: "r", DeniedActions: []string{"dynamodb:*"}}} }
	fresh := func() *v1alpha1.PodIdentityBinding { return binding("ns", "app", "app", "dynamodb:GetItem") }
	noRoles := func(i *Input) { i.Roles = map[string]*role.Observed{} }

	tests := []struct {
		policy  string
		decide  policyFunc
		decides map[string]Input
		passes  map[string]Input
	}{
		{"Deleting", deleting,
			map[string]Input{"deleted": in(deleted())},
			map[string]Input{"live": in(current()), "live, held": in(current(), held)}},
		{"ServiceAccountHeld", serviceAccountHeld,
			map[string]Input{"an older binding holds the spec's ServiceAccount": in(current(), held),
				"invalid spec, an older binding holds the status's ServiceAccount": in(typo(), func(i *Input) { i.CurrentHolder = "older" })},
			map[string]Input{"nobody holds it": in(current()),
				"valid spec: only the spec's ServiceAccount counts": in(current(), func(i *Input) { i.CurrentHolder = "older" })}},
		{"InvalidSpec", invalidSpec,
			map[string]Input{"typo": in(typo())},
			map[string]Input{"valid": in(current()), "valid but violating a guardrail": in(current(), denyDynamo)}},
		{"RoleNameTaken", roleNameTaken,
			map[string]Input{"roleName is a foreign role": in(renamed("ns_taken"), foreign)},
			map[string]Input{"roleName is free": in(renamed("ns_free")), "roleName is the binding's own role": in(current())}},
		{"NothingAllowed", nothingAllowed,
			map[string]Input{"a new binding violating a guardrail": in(fresh(), noRoles, denyDynamo)},
			map[string]Input{"a current binding violating a guardrail is narrowed": in(current(), denyDynamo),
				"a new valid binding": in(fresh(), noRoles)}},
		{"Converge", converge,
			map[string]Input{"current": in(current()), "new": in(fresh(), noRoles)},
			nil},
	}
	if len(tests) != len(chain) {
		t.Fatalf("%d policies tested, %d in the chain", len(tests), len(chain))
	}
	for i, tt := range tests {
		if chain[i].name != tt.policy {
			t.Fatalf("chain[%d] = %s, want %s", i, chain[i].name, tt.policy)
		}
		for name, input := range tt.decides {
			if _, ok := tt.decide(newSituation(input)); !ok {
				t.Errorf("%s does not decide %q", tt.policy, name)
			}
			// Compute asks the chain in order: this policy or an earlier one.
			if p := Compute(input); slices.IndexFunc(chain, func(c struct {
				name   string
				decide policyFunc
			}) bool {
				return c.name == p.Policy
			}) > i {
				t.Errorf("%q decided by %s, after %s", name, p.Policy, tt.policy)
			}
		}
		for name, input := range tt.passes {
			if _, ok := tt.decide(newSituation(input)); ok {
				t.Errorf("%s decides %q", tt.policy, name)
			}
		}
	}
}

// TestPlanSteps: the ServiceAccount step and the conditions every policy's
// plan ends with.
func TestPlanSteps(t *testing.T) {
	pi := cfg
	pi.PodIdentity = &identity.PodIdentity{Account: "123456789012", ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/dev"}
	base := func() *v1alpha1.PodIdentityBinding {
		return withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROA1", "app")
	}
	plan := func(c role.Config, b *v1alpha1.PodIdentityBinding) Plan {
		return Compute(Input{Binding: b, Config: c, Guard: checker, Managed: guard.Managed{},
			Roles: map[string]*role.Observed{"dev_ns_app": observed(b, "dev_ns_app", "AROA1")}})
	}

	t.Run("in sync: bind the spec's ServiceAccount, nothing to let go of", func(t *testing.T) {
		p := plan(cfg, base())
		if p.Bind == nil || p.Bind.ServiceAccount != "app" || p.Bind.Identity != identity.KindIRSA || len(p.Bind.Unbind) != 0 || p.Bind.Previous != nil {
			t.Fatalf("bind = %+v", p.Bind)
		}
		sa := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionServiceAccountSynced)
		if sa.Message != "ServiceAccount app is annotated with the role ARN" {
			t.Errorf("ServiceAccountSynced: %s", sa.Message)
		}
	})
	t.Run("a new ServiceAccount: the old one is released after the bind", func(t *testing.T) {
		b := base()
		b.Spec.ServiceAccountName = "other"
		p := plan(cfg, b)
		if p.Bind == nil || p.Bind.ServiceAccount != "other" || p.Bind.Previous == nil ||
			!slices.Equal(p.Bind.Previous.ServiceAccounts, []string{"app"}) || p.Bind.Previous.Retain {
			t.Fatalf("bind = %+v", p.Bind)
		}
	})
	t.Run("switching to Pod Identity: bind by association, then unbind IRSA", func(t *testing.T) {
		b := base()
		b.Status.Identity = v1alpha1.IdentityIRSA
		b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
		piChecker := checker
		piChecker.RoleConfig = pi
		p := Compute(Input{Binding: b, Config: pi, Guard: piChecker, Managed: guard.Managed{}, Roles: map[string]*role.Observed{}})
		if p.Bind == nil || p.Bind.Identity != identity.KindEKSPodIdentity || !slices.Equal(p.Bind.Unbind, []identity.Kind{identity.KindIRSA}) {
			t.Fatalf("bind = %+v", p.Bind)
		}
		sa := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionServiceAccountSynced)
		if !strings.Contains(sa.Message, "EKS pod identity association") {
			t.Errorf("ServiceAccountSynced: %s", sa.Message)
		}
	})
	t.Run("deleting with Retain: release every ServiceAccount as a Retain record, then the finalizer", func(t *testing.T) {
		b := base()
		b.Spec.ServiceAccountName = "other"
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		now := metav1.Now()
		b.DeletionTimestamp = &now
		p := plan(cfg, b)
		if p.Release == nil || !p.Release.Retain || !slices.Equal(p.Release.ServiceAccounts, []string{"app", "other"}) || !p.RemoveFinalizer {
			t.Fatalf("release = %+v, removeFinalizer = %v", p.Release, p.RemoveFinalizer)
		}
	})
	t.Run("no current role: release, never bind", func(t *testing.T) {
		b := binding("ns", "app", "app", "dynamodb:GetItem")
		p := Compute(Input{Binding: b, Config: cfg, Guard: checker, Managed: guard.Managed{}, Holder: "older", Roles: map[string]*role.Observed{}})
		if p.Release == nil || p.Release.Retain || p.Bind != nil || p.RemoveFinalizer {
			t.Fatalf("release = %+v, bind = %+v", p.Release, p.Bind)
		}
		if c := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionServiceAccountSynced); c.Reason != v1alpha1.ReasonServiceAccountConflict {
			t.Errorf("ServiceAccountSynced: %+v", c)
		}
	})
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

// Issue 20: a binding whose namespace moved to another account gets its
// role there first; the role in the previous account is retired only after
// the ServiceAccount points at the new one, and each is rendered with its
// own account's configuration.
func TestMoveBetweenAccounts(t *testing.T) {
	other := cfg
	other.ProviderARN = "arn:aws:iam::222222222222:oidc-provider/oidc.example.com/id/X"
	b := withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROAB", "app")
	b.Status.Account = "222222222222"
	b.Status.OwnedRoles[0].Account = "222222222222"
	old := Key("222222222222", "dev_ns_app")
	inB := observed(b, "dev_ns_app", "AROAB")
	p := Compute(Input{Binding: b, Account: "", Config: cfg, Configs: map[string]role.Config{"222222222222": other},
		Guard: checker, Managed: guard.Managed{}, Roles: map[string]*role.Observed{"dev_ns_app": nil, old: inB}})
	checkShape(t, b, p)
	if p.Current != "dev_ns_app" || !equalOps(ops(p.Before), map[string]Op{"dev_ns_app": OpCreate}) ||
		!equalOps(ops(p.After), map[string]Op{old: OpDelete}) {
		t.Fatalf("current %q, before %v, after %v", p.Current, ops(p.Before), ops(p.After))
	}
	if p.Before[0].Desired.Name != "dev_ns_app" || !strings.Contains(string(mustJSON(t, p.Before[0].Desired.Trust)), "123456789012:oidc-provider") {
		t.Errorf("the new role is not the operator account's: %+v", p.Before[0].Desired)
	}
	if _, ok := p.Owned[old]; !ok {
		t.Errorf("the previous account's role is not owned: %v", p.Owned)
	}

	planIn := func(account string) Plan {
		return Compute(Input{Binding: b, Account: account, Config: other, Guard: checker, Managed: guard.Managed{},
			Roles: map[string]*role.Observed{old: inB}})
	}
	if p := planIn("222222222222"); p.Current != old || len(p.After) != 0 || !p.Ready {
		t.Errorf("in place: %+v", p)
	}
}

func mustJSON(t *testing.T, d policy.Document) []byte {
	t.Helper()
	s, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// A role status records that IAM no longer has is forgotten (only the
// record); the role being created under a recorded name is not.
func TestForgetsRecordsOfVanishedRoles(t *testing.T) {
	b := withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROA1", "app")
	b.Status.OwnedRoles = append(b.Status.OwnedRoles, v1alpha1.RoleReference{Name: "dev_ns_app", Account: "222222222222", ID: "AROAB"})
	p := Compute(Input{Binding: b, Config: cfg, Guard: checker, Managed: guard.Managed{},
		Roles: map[string]*role.Observed{"dev_ns_app": nil, Key("222222222222", "dev_ns_app"): nil}})
	if !slices.Equal(p.Forget, []string{Key("222222222222", "dev_ns_app")}) || ops(p.Before)["dev_ns_app"] != OpCreate {
		t.Errorf("forget %v, before %v", p.Forget, ops(p.Before))
	}
}

// A ServiceAccount with an association the binding does not own cannot be
// held with EKS Pod Identity: no role is created for it, and an existing
// one is deleted (or parked under Retain), as when another binding holds it.
func TestForeignAssociationIsAConflict(t *testing.T) {
	pi := cfg
	pi.PodIdentity = &identity.PodIdentity{Account: "123456789012", ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/dev"}
	piChecker := checker
	piChecker.RoleConfig = pi
	b := binding("ns", "app", "app", "dynamodb:GetItem")
	b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	in := Input{Binding: b, Config: pi, Guard: piChecker, Managed: guard.Managed{}, Roles: map[string]*role.Observed{},
		ForeignAssociation: "ServiceAccount app already has EKS pod identity association a-1"}
	p := Compute(in)
	checkShape(t, b, p)
	if p.Reason != v1alpha1.ReasonAssociationConflict || len(p.Before) != 0 || p.Bind != nil || !strings.Contains(p.Message, "a-1") {
		t.Errorf("new binding: %s %s, before %v", p.Reason, p.Message, ops(p.Before))
	}
	held := withStatus(b.DeepCopy(), "dev_ns_app", "AROA1", "app")
	in.Binding, in.Roles = held, map[string]*role.Observed{"dev_ns_app": observed(held, "dev_ns_app", "AROA1")}
	if p := Compute(in); !equalOps(ops(p.Before), map[string]Op{"dev_ns_app": OpDelete}) {
		t.Errorf("existing role: before %v", ops(p.Before))
	}
	b.Spec.Identity = v1alpha1.IdentityIRSA
	in.Binding, in.Roles = b, map[string]*role.Observed{}
	if p := Compute(in); p.Reason == v1alpha1.ReasonAssociationConflict {
		t.Errorf("an IRSA binding does not care about associations: %s", p.Message)
	}
}

// chainConfigs are the cluster's account (which offers EKS Pod Identity),
// another account, and the guard of the other account.
func chainConfigs() (home, other role.Config, otherChecker guard.Checker) {
	home = cfg
	home.PodIdentity = &identity.PodIdentity{Account: "123456789012", ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/dev"}
	other = home
	other.ProviderARN = "arn:aws:iam::222222222222:oidc-provider/oidc.example.com/id/X"
	otherChecker = checker
	otherChecker.RoleConfig = other
	return home, other, otherChecker
}

// EKS Pod Identity with the role in another account (Chain): the hop role
// in the cluster's account comes first (the target's trust names it), may
// only assume the target, and trusts EKS exactly as a Pod Identity role
// does; the target trusts only the hop with the association's external ID
// (nobody before there is one, and the binding is not Ready); neither is
// retired while the chain serves, and both go with the binding.
func TestChainedPodIdentity(t *testing.T) {
	home, other, otherChecker := chainConfigs()
	b := binding("ns", "app", "app", "dynamodb:GetItem")
	b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	hop := HopKey(home, b)
	target := Key("222222222222", "dev_ns_app")
	in := Input{Binding: b, Account: "222222222222", Config: other, Configs: map[string]role.Config{"": home}, Guard: otherChecker,
		Managed: guard.Managed{}, Roles: map[string]*role.Observed{target: nil, hop: nil}, Chain: &Chain{Home: home}}
	p := Compute(in)
	checkShape(t, b, p)
	if hop != "dev_ns_app_hop" || len(p.Before) != 2 || p.Before[0].Name != hop || p.Before[1].Name != target ||
		p.Before[0].Op != OpCreate || p.Before[1].Op != OpCreate {
		t.Fatalf("hop %s, before %+v", hop, p.Before)
	}
	if p.Bind == nil || p.Bind.Hop != hop || p.Current != target || p.Ready || p.Reason != v1alpha1.ReasonAssociationPending {
		t.Fatalf("bind %+v current %s ready %v reason %s", p.Bind, p.Current, p.Ready, p.Reason)
	}
	hopRole, targetRole := p.Before[0].Desired, p.Before[1].Desired
	hopARN, targetARN := "arn:aws:iam::123456789012:role/podidentity/dev_ns_app_hop", "arn:aws:iam::222222222222:role/podidentity/dev_ns_app"
	if want := identity.HopPermissions(targetARN); hopRole.Permissions == nil || !policy.Equal(*hopRole.Permissions, want) || len(hopRole.ManagedPolicies) != 0 {
		t.Errorf("hop permissions %s", mustJSON(t, *hopRole.Permissions))
	}
	if want := home.PodIdentity.Trust(identity.Subject{Namespace: "ns", ServiceAccount: "app"}); !policy.Equal(hopRole.Trust, want) {
		t.Errorf("hop trust %s", mustJSON(t, hopRole.Trust))
	}
	if !policy.Equal(targetRole.Trust, identity.TargetTrust(hopARN, "")) || !strings.Contains(string(mustJSON(t, targetRole.Trust)), `"Deny"`) {
		t.Errorf("target trust before the association: %s", mustJSON(t, targetRole.Trust))
	}
	if targetRole.Permissions == nil || !strings.Contains(string(mustJSON(t, *targetRole.Permissions)), "dynamodb:GetItem") {
		t.Errorf("the target carries the binding's permissions: %+v", targetRole.Permissions)
	}

	// The association exists with an external ID: the target trusts the hop with it, and the binding is Ready.
	bound := withStatus(b.DeepCopy(), "dev_ns_app", "AROAT", "app")
	bound.Status.Account, bound.Status.Identity = "222222222222", v1alpha1.IdentityEKSPodIdentity
	bound.Status.OwnedRoles = []v1alpha1.RoleReference{{Name: "dev_ns_app", Account: "222222222222", ID: "AROAT"}, {Name: "dev_ns_app_hop", ID: "AROAH"}}
	hopObs := &role.Observed{ARN: hopARN, ID: "AROAH", Tags: role.OwnershipTags(home, "ns", "app")}
	targetObs := &role.Observed{ARN: targetARN, ID: "AROAT", Tags: role.OwnershipTags(other, "ns", "app")}
	in.Binding, in.Roles, in.Chain = bound, map[string]*role.Observed{target: targetObs, hop: hopObs}, &Chain{Home: home, ExternalID: "ext-1"}
	p = Compute(in)
	checkShape(t, bound, p)
	if !p.Ready || !policy.Equal(p.Before[1].Desired.Trust, identity.TargetTrust(hopARN, "ext-1")) || len(p.After) != 0 {
		t.Errorf("ready %v %s, target trust %s, after %v", p.Ready, p.Message, mustJSON(t, p.Before[1].Desired.Trust), ops(p.After))
	}

	// The binding switches to IRSA: the hop is retired once the ServiceAccount points at the target.
	irsa := bound.DeepCopy()
	irsa.Spec.Identity = v1alpha1.IdentityIRSA
	in.Binding = irsa
	p = Compute(in)
	if p.Bind == nil || p.Bind.Hop != "" || !equalOps(ops(p.After), map[string]Op{hop: OpDelete}) {
		t.Errorf("IRSA: bind %+v after %v", p.Bind, ops(p.After))
	}

	// Deleted: both go.
	gone := bound.DeepCopy()
	now := metav1.Now()
	gone.DeletionTimestamp = &now
	in.Binding = gone
	if p := Compute(in); !equalOps(ops(p.Before), map[string]Op{hop: OpDelete, target: OpDelete}) {
		t.Errorf("deleting: %v", ops(p.Before))
	}

	// A role nobody owns holds the hop's name: nothing is bound.
	in.Binding, in.Roles = b, map[string]*role.Observed{target: nil, hop: {ARN: hopARN, ID: "AROAX", Tags: map[string]string{}}}
	p = Compute(in)
	if p.Bind != nil || p.Reason != v1alpha1.ReasonRoleConflict || slices.ContainsFunc(append(p.Before, p.After...), func(a Action) bool { return a.Name == hop }) {
		t.Errorf("squatted hop: bind %+v reason %s before %v after %v", p.Bind, p.Reason, ops(p.Before), ops(p.After))
	}
}

// A chained binding whose namespace moves back to the cluster's account,
// where its role name is taken (RoleConflict), keeps serving from its role
// in the other account, still chained: the target keeps trusting only the
// hop, the hop stays, and nothing trusts the ServiceAccount directly in
// the other account (found by the invariant sequence, seed 2246110281: the
// target was rendered for the cluster's account, so it trusted the
// ServiceAccount through EKS while the hop still did, I2).
func TestBlockedMoveKeepsTheChain(t *testing.T) {
	home, other, _ := chainConfigs()
	b := withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "ns_r7", "AROAT", "app")
	b.Spec.Identity, b.Status.Identity, b.Status.Account = v1alpha1.IdentityEKSPodIdentity, v1alpha1.IdentityEKSPodIdentity, "222222222222"
	b.Spec.RoleName = "ns_r7"
	hop := HopKey(home, b)
	target := Key("222222222222", "ns_r7")
	b.Status.OwnedRoles = []v1alpha1.RoleReference{{Name: "ns_r7", Account: "222222222222", ID: "AROAT"}, {Name: "dev_ns_app_hop", ID: "AROAH"}}
	hopARN := "arn:aws:iam::123456789012:role/podidentity/dev_ns_app_hop"
	targetObs := &role.Observed{ARN: "arn:aws:iam::222222222222:role/podidentity/ns_r7", ID: "AROAT", Tags: role.OwnershipTags(other, "ns", "app"),
		Trust: identity.TargetTrust(hopARN, "ext").Fingerprint()}
	hopObs := &role.Observed{ARN: hopARN, ID: "AROAH", Tags: role.OwnershipTags(home, "ns", "app")}
	squatter := &role.Observed{ARN: "arn:aws:iam::123456789012:role/podidentity/ns_r7", ID: "AROAX", Tags: map[string]string{}}
	homeChecker := checker
	homeChecker.RoleConfig = home
	in := Input{Binding: b, Account: "", Config: home, Configs: map[string]role.Config{"222222222222": other}, Guard: homeChecker,
		Managed: guard.Managed{}, Roles: map[string]*role.Observed{"ns_r7": squatter, target: targetObs, hop: hopObs},
		Chain: &Chain{Home: home, ExternalID: "ext"}}
	p := Compute(in)
	if p.Policy != "RoleNameTaken" || p.Current != target || p.Bind == nil || p.Bind.Hop != hop {
		t.Fatalf("policy %s current %q bind %+v (%s)", p.Policy, p.Current, p.Bind, p.Message)
	}
	for _, a := range append(p.Before, p.After...) {
		switch a.Name {
		case target:
			if a.Op != OpUpdate || !policy.Equal(a.Desired.Trust, identity.TargetTrust(hopARN, "ext")) {
				t.Errorf("the target: %s with trust %s; want it to trust only the hop", a.Op, mustJSON(t, a.Desired.Trust))
			}
		case hop:
			if a.Op != OpUpdate && a.Op != OpCreate {
				t.Errorf("the hop is %s while the chain serves", a.Op)
			}
		default:
			t.Errorf("%s %s: the squatter and nothing else is touched", a.Op, a.Name)
		}
	}
}

// A binding kept on a role of the cluster's account (a guardrail forbids
// the role name it asks for in the other account) is not chained: its hop
// is retired and the association points at that role directly.
func TestNoChainForARoleInTheClustersAccount(t *testing.T) {
	home, other, otherChecker := chainConfigs()
	b := withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "ns_kept", "AROAK", "app")
	b.Spec.Identity, b.Status.Identity = v1alpha1.IdentityEKSPodIdentity, v1alpha1.IdentityEKSPodIdentity
	b.Spec.RoleName = "dev_other-ns_squat" // another namespace's generated name: forbidden
	hop := HopKey(home, b)
	b.Status.OwnedRoles = append(b.Status.OwnedRoles, v1alpha1.RoleReference{Name: "dev_ns_app_hop", ID: "AROAH"})
	kept := &role.Observed{ARN: "arn:aws:iam::123456789012:role/podidentity/ns_kept", ID: "AROAK", Tags: role.OwnershipTags(home, "ns", "app")}
	hopObs := &role.Observed{ARN: "arn:aws:iam::123456789012:role/podidentity/dev_ns_app_hop", ID: "AROAH", Tags: role.OwnershipTags(home, "ns", "app")}
	p := Compute(Input{Binding: b, Account: "222222222222", Config: other, Configs: map[string]role.Config{"": home}, Guard: otherChecker,
		Managed: guard.Managed{}, Roles: map[string]*role.Observed{"ns_kept": kept, hop: hopObs}, Chain: &Chain{Home: home, ExternalID: "ext"}})
	if p.Current != "ns_kept" || p.Bind == nil || p.Bind.Hop != "" || ops(p.After)[hop] != OpDelete {
		t.Errorf("current %q bind %+v after %v (%s: %s)", p.Current, p.Bind, ops(p.After), p.Reason, p.Message)
	}
}

// A binding deleted with Retain whose current role is gone (deleted out of
// band) releases its ServiceAccount: there is no role to keep it bound to.
func TestRetainWithoutARoleReleases(t *testing.T) {
	b := withStatus(binding("ns", "app", "app", "dynamodb:GetItem"), "dev_ns_app", "AROA1", "app")
	b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
	now := metav1.Now()
	b.DeletionTimestamp = &now
	in := Input{Binding: b, Config: cfg, Guard: checker, Managed: guard.Managed{}, Roles: map[string]*role.Observed{"dev_ns_app": observed(b, "dev_ns_app", "AROA1")}}
	if p := Compute(in); p.Release == nil || !p.Release.Retain || !equalOps(ops(p.Before), map[string]Op{"dev_ns_app": OpRetain}) {
		t.Fatalf("with its role: release %+v before %v", p.Release, ops(p.Before))
	}
	in.Roles = map[string]*role.Observed{"dev_ns_app": nil}
	if p := Compute(in); p.Release == nil || p.Release.Retain || !p.RemoveFinalizer {
		t.Errorf("without its role: release %+v finalizer %v", p.Release, p.RemoveFinalizer)
	}
}

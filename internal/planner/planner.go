// Package planner decides, in one pure step, what every IAM role a binding
// owns (or once owned) must look like, which ServiceAccount carries the
// role annotation, and what the binding's status says. The reconciler only
// gathers the inputs, applies the plan and reports it, so every early exit
// (conflicts, invalid specs, guardrail violations) goes through the same
// ownership check and the same fail-closed rules. docs/security-invariants.md
// states what the plans guarantee.
package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Input is everything the reconciler gathered for one binding.
type Input struct {
	Binding *v1alpha1.PodIdentityBinding
	Config  role.Config
	Guard   guard.Checker
	// Rules are the guardrails selecting the binding's namespace.
	Rules []guard.Rule
	// Managed holds the default versions of the spec's managed policies.
	Managed guard.Managed
	// Holder is the older binding that holds spec.serviceAccountName, ""
	// when this binding may hold it.
	Holder string
	// CurrentHolder is the older binding that holds the ServiceAccount the
	// binding's roles trust now (status.serviceAccountName), when that is
	// not the spec's: "" when this binding may keep serving it.
	CurrentHolder string
	// Roles maps every name of Candidates, and every role IAM's ownership
	// tags name for the binding, to what IAM has (nil: no role).
	Roles map[string]*role.Observed
	// Provider is what IAM says about the cluster's OIDC provider; nil when
	// it is not checked.
	Provider *oidcprovider.State
	// KeepRoles: the binding is deleted with its CRD; its roles are kept
	// (Retain records) whatever its deletionPolicy and the guardrails say.
	KeepRoles bool
}

// Op is what happens to one role.
type Op string

// Role operations.
const (
	// OpCreate creates the role (Desired) and writes its permissions.
	OpCreate Op = "Create"
	// OpUpdate applies Diff to the role, converging it on Desired.
	OpUpdate Op = "Update"
	// OpPark strips the role: no permissions, a trust policy that trusts no
	// ServiceAccount. Used while the binding cannot hold its ServiceAccount
	// and deletionPolicy is Retain.
	OpPark Op = "Park"
	// OpDelete deletes the role with its inline policies and attachments.
	OpDelete Op = "Delete"
	// OpRetain tags the role as retained and lets go of it (the Retain record).
	OpRetain Op = "Retain"
)

// Action is one role's part of a plan. Every action targets a role the
// binding owns, by the name under which it was observed (or, for
// OpCreate, a name that has no role).
type Action struct {
	Op   Op
	Name string
	// ID is the unique ID of the observed role the action was planned
	// against ("" for OpCreate); destructive calls confirm it.
	ID      string
	Desired role.Desired
	// Diff is what OpUpdate, OpPark and OpRetain write; empty means in sync.
	Diff role.Plan
	// Narrowed: the desired state was narrowed by guardrails (not drift).
	Narrowed bool
}

// Plan is the outcome for one binding.
type Plan struct {
	// Before runs first, in order: the role the ServiceAccount will point at
	// is created or updated, and roles that must lose access go.
	Before []Action
	// Current is the role the ServiceAccount is annotated with once Before
	// succeeded ("" none: the binding's annotations are released).
	Current string
	// ServiceAccount is the ServiceAccount to bind to Current.
	ServiceAccount string
	// Identity is the mechanism that binds it: the one the role's trust
	// is rendered for (the spec's, narrowed by guardrails; for an invalid
	// spec, the one in effect).
	Identity identity.Kind
	// After runs once the ServiceAccount points at Current: roles the
	// binding no longer uses are deleted or retained.
	After []Action

	// Ready is true when the binding is fully applied and usable; otherwise
	// Reason and Message say why (a v1alpha1 Reason constant).
	Ready bool
	// Applied is true when the role and the ServiceAccount match the spec,
	// though the binding is not Ready (the OIDC provider is missing).
	Applied bool
	Reason  string
	Message string
	// DeletionPolicy is the one in effect: spec.deletionPolicy, or Delete
	// when a guardrail forbids Retain.
	DeletionPolicy v1alpha1.DeletionPolicy
	// Owned lists the observed roles the binding owns (name -> ID).
	Owned map[string]string
}

// Candidates are the role names the planner must see: the spec's role name,
// the status's current role, every role the status records as owned and,
// when deleting, the generated name.
func Candidates(cfg role.Config, b *v1alpha1.PodIdentityBinding) []string {
	names := []string{role.Name(cfg, b), b.Status.RoleName}
	for _, r := range b.Status.OwnedRoles {
		names = append(names, r.Name)
	}
	if !b.DeletionTimestamp.IsZero() {
		names = append(names, role.Name(cfg, withoutRoleName(b)))
	}
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func withoutRoleName(b *v1alpha1.PodIdentityBinding) *v1alpha1.PodIdentityBinding {
	c := b.DeepCopy()
	c.Spec.RoleName = ""
	return c
}

// KnownID is the unique ID the binding recorded for a role name ("" none):
// from status.ownedRoles, or status.roleId for bindings written before
// ownedRoles existed.
func KnownID(b *v1alpha1.PodIdentityBinding, name string) string {
	for _, r := range b.Status.OwnedRoles {
		if r.Name == name {
			return r.ID
		}
	}
	if b.Status.RoleName == name {
		return b.Status.RoleID
	}
	return ""
}

// Compute is the pure planning step.
func Compute(in Input) Plan {
	b := in.Binding
	p := Plan{Owned: map[string]string{}}
	owned := map[string]*role.Observed{}
	// Every observed role counts, not only Candidates: the reconciler also
	// observes the roles IAM's tags name for the binding.
	for name, o := range in.Roles {
		if o != nil && role.OwnedBy(o, KnownID(b, name), in.Config, b.Namespace, b.Name) {
			owned[name] = o
			p.Owned[name] = o.ID
		}
	}
	check := in.Guard.Check(b, in.Rules, in.Managed)
	p.DeletionPolicy = b.Spec.DeletionPolicy
	if check.ForceDelete {
		p.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	}
	if in.KeepRoles && !b.DeletionTimestamp.IsZero() {
		p.DeletionPolicy = v1alpha1.DeletionPolicyRetain
	}
	retain := p.DeletionPolicy == v1alpha1.DeletionPolicyRetain
	// retire lets go of a role the binding no longer uses: deleted, or
	// tagged as a Retain record (no write when it already is one).
	retire := func(name string) Action {
		if !retain {
			return Action{Op: OpDelete, Name: name, ID: owned[name].ID}
		}
		a := Action{Op: OpRetain, Name: name, ID: owned[name].ID}
		if v, _ := role.TagValue(owned[name].Tags, role.TagRetained); v != "true" {
			a.Diff = role.TagPlan(map[string]string{role.TagRetained: "true"})
		}
		return a
	}
	// as is the desired role under another name.
	as := func(d role.Desired, name string) role.Desired {
		d.Name = name
		return d
	}
	sortedOwned := func(except string) []string {
		var names []string
		for n := range owned {
			if n != except {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return names
	}

	if !b.DeletionTimestamp.IsZero() {
		for _, n := range sortedOwned("") {
			p.Before = append(p.Before, retire(n))
		}
		p.Reason, p.Message = v1alpha1.ReasonDeleting, "cleaning up the IAM role and ServiceAccount annotation"
		return p
	}

	primary := ""
	if _, ok := owned[b.Status.RoleName]; ok {
		primary = b.Status.RoleName
	}

	// A binding that cannot hold its ServiceAccount owns no role any pod
	// can use. An invalid spec keeps serving the ServiceAccount the roles
	// trust now, so that is the one it must still hold.
	holder, contested := in.Holder, b.Spec.ServiceAccountName
	if len(check.Invalid) > 0 && in.CurrentHolder != "" {
		holder, contested = in.CurrentHolder, currentServiceAccount(b)
	}
	if holder != "" {
		fate := "deleted"
		if retain {
			fate = "stripped of every permission and trust"
		}
		for _, n := range sortedOwned("") {
			if retain {
				p.Before = append(p.Before, park(in.Config, b, n, owned[n]))
			} else {
				p.Before = append(p.Before, Action{Op: OpDelete, Name: n, ID: owned[n].ID})
			}
		}
		p.Reason = v1alpha1.ReasonServiceAccountConflict
		p.Message = fmt.Sprintf("ServiceAccount %s is already bound by PodIdentityBinding %s (the older binding wins); point this binding at another ServiceAccount or delete one of them. Until then this binding's roles are %s",
			contested, holder, fate)
		return p
	}

	// An invalid spec is never applied; the current role is held to what
	// the spec and the guardrails allow (never widened), and its trust and
	// tags are still corrected.
	if len(check.Invalid) > 0 {
		p.Reason, p.Message = v1alpha1.ReasonInvalidSpec, "invalid spec: "+guard.Message(check.Invalid)
		if primary != "" {
			a, removed := narrowCurrent(in, primary, owned[primary])
			p.Before = append(p.Before, a)
			p.Current, p.ServiceAccount = primary, currentServiceAccount(b)
			p.Identity = in.Config.MechanismOf(b.Status.Identity).Kind()
			if removed != "" {
				p.Message += ". Removed from the role because the spec or the guardrails do not allow it: " + removed
			}
		}
		for _, n := range sortedOwned(primary) {
			p.After = append(p.After, retire(n))
		}
		return p
	}

	effective := b
	if len(check.Violations) > 0 {
		effective = check.Narrow(b)
	}
	desired := role.DesiredFor(in.Config, effective)
	p.Identity = in.Config.Mechanism(effective).Kind()
	if check.Boundary != "" {
		desired.Boundary = check.Boundary
	}
	target := desired.Name
	if check.RoleNameForbidden {
		target = primary
	}
	obs := in.Roles[target]
	_, targetOwned := owned[target]

	switch {
	case target != "" && obs != nil && !targetOwned:
		p.Reason = v1alpha1.ReasonRoleConflict
		p.Message = fmt.Sprintf("IAM role %s exists but is not tagged as owned by this binding (%s=%s, %s=%s, %s=%s); the operator will not modify it. Set spec.roleName to another name or remove the other role",
			target, role.TagCluster, in.Config.ClusterName, role.TagNamespace, b.Namespace, role.TagBinding, b.Name)
		if v, _ := role.TagValue(obs.Tags, role.TagRetained); v != "" {
			p.Message += fmt.Sprintf(" (it is a role a binding left with deletionPolicy Retain; remove its tag %s to let this binding adopt it)", role.TagRetained)
		}
		if primary != "" {
			// Keep serving the binding from its current role, converged on
			// the current spec.
			p.Before = append(p.Before, update(primary, as(desired, primary), owned[primary], len(check.Violations) > 0))
			p.Current, p.ServiceAccount = primary, b.Spec.ServiceAccountName
		}
		for _, n := range sortedOwned(primary) {
			p.After = append(p.After, retire(n))
		}
		return p
	case target == "" || (obs == nil && len(check.Violations) > 0 && primary == ""):
		// A new binding that breaks a guardrail gets nothing in IAM.
		p.Reason, p.Message = v1alpha1.ReasonGuardrailViolation, "violates guardrails: "+guard.Message(check.Violations)
		for _, n := range sortedOwned("") {
			p.After = append(p.After, retire(n))
		}
		return p
	case obs == nil:
		p.Before = append(p.Before, Action{Op: OpCreate, Name: target, Desired: as(desired, target), Narrowed: len(check.Violations) > 0})
	default:
		p.Before = append(p.Before, update(target, as(desired, target), obs, len(check.Violations) > 0))
	}
	p.Current, p.ServiceAccount = target, b.Spec.ServiceAccountName
	for _, n := range sortedOwned(target) {
		p.After = append(p.After, retire(n))
	}
	if len(check.Violations) > 0 {
		p.Reason = v1alpha1.ReasonGuardrailViolation
		p.Message = "violates guardrails: " + guard.Message(check.Violations) + ". Removed from the role: " + check.Removed(b)
		return p
	}
	if reason, msg := providerProblem(in); reason != "" {
		p.Applied, p.Reason, p.Message = true, reason, msg
		return p
	}
	p.Ready = true
	return p
}

// providerProblem says why no token can assume the binding's role although
// the role is right: the OIDC provider its trust names is missing in IAM, does
// not list the binding's audience, or cannot be read.
func providerProblem(in Input) (reason, msg string) {
	s := in.Provider
	if s == nil {
		return "", ""
	}
	aud := role.Audience(in.Binding)
	switch {
	case s.Known && !s.Exists:
		return v1alpha1.ReasonOIDCProviderMissing, fmt.Sprintf("IAM has no OIDC identity provider %s, so STS rejects every token for this role. "+
			"Register the cluster's issuer https://%s (exactly as tokens carry it in iss) with client ID %s", s.ARN, in.Config.Issuer, aud)
	case s.Known && !s.Accepts(aud):
		return v1alpha1.ReasonAudienceNotRegistered, fmt.Sprintf("the OIDC identity provider %s does not list the audience %s as a client ID, "+
			"so STS rejects this binding's tokens. Add it (aws iam add-client-id-to-open-id-connect-provider) or use one of %v",
			s.ARN, aud, s.Audiences)
	case s.Known:
		return "", ""
	case s.Rejected:
		return v1alpha1.ReasonIAMRequestRejected, fmt.Sprintf("reading the OIDC identity provider %s was rejected (%v); "+
			"the operator's IAM policy needs iam:GetOpenIDConnectProvider on it", s.ARN, s.Err)
	default:
		return v1alpha1.ReasonIAMUnavailable, fmt.Sprintf("the OIDC identity provider %s could not be read yet: %v", s.ARN, s.Err)
	}
}

func update(name string, d role.Desired, o *role.Observed, narrowed bool) Action {
	return Action{Op: OpUpdate, Name: name, ID: o.ID, Desired: d, Diff: role.Diff(d, *o), Narrowed: narrowed}
}

func currentServiceAccount(b *v1alpha1.PodIdentityBinding) string {
	if b.Status.ServiceAccountName != "" {
		return b.Status.ServiceAccountName
	}
	return b.Spec.ServiceAccountName
}

// ParkedTrust trusts no ServiceAccount: one Deny statement for the
// cluster's provider (IRSA's; a role whose binding is gone has no mechanism
// to ask, and a Deny-only trust lets nobody in whatever it names).
func ParkedTrust(cfg role.Config) policy.Document {
	return cfg.IRSA().Parked()
}

func park(cfg role.Config, b *v1alpha1.PodIdentityBinding, name string, o *role.Observed) Action {
	d := role.DesiredFor(cfg, b)
	d.Name = name
	d.Trust = cfg.MechanismOf(b.Status.Identity).Parked()
	d.Permissions = nil
	d.ManagedPolicies = nil
	d.Description = o.Description
	d.MaxSessionDuration = o.MaxSessionDuration
	return Action{Op: OpPark, Name: name, ID: o.ID, Desired: d, Diff: role.Diff(d, *o), Narrowed: true}
}

// narrowCurrent converges a role whose binding's spec is invalid: it keeps
// only the permissions the role has now that the spec also declares and the
// guardrails allow, trusts the ServiceAccount the binding currently holds,
// and restores tags and boundary. It returns what it removes.
func narrowCurrent(in Input, name string, o *role.Observed) (Action, string) {
	b := in.Binding
	cur := role.CurrentBinding(b, o)
	cur.Spec.ServiceAccountName = currentServiceAccount(b)
	cur.Spec.Identity = b.Status.Identity // an invalid spec keeps the mechanism in effect
	var removed []string
	// Statements: only those the spec declares too (by meaning).
	specDoc, _ := policy.PermissionPolicy(b.Spec.Permissions)
	var kept []v1alpha1.PermissionStatement
	for i, st := range cur.Spec.Permissions {
		one, _ := policy.PermissionPolicy([]v1alpha1.PermissionStatement{st})
		if slices.ContainsFunc(specDoc.Statement, func(s policy.Statement) bool {
			return policy.Equal(policy.Document{Version: policy.Version, Statement: []policy.Statement{s}}, one)
		}) {
			kept = append(kept, st)
		} else {
			removed = append(removed, fmt.Sprintf("statement %d of the role's permission policy (not in the spec)", i))
		}
	}
	cur.Spec.Permissions = kept
	var arns []string
	for _, a := range cur.Spec.ManagedPolicyArns {
		if slices.Contains(b.Spec.ManagedPolicyArns, a) {
			arns = append(arns, a)
		} else {
			removed = append(removed, "managed policy "+a+" (not in the spec)")
		}
	}
	cur.Spec.ManagedPolicyArns = arns
	if s := role.DesiredFor(in.Config, b).MaxSessionDuration; s < *cur.Spec.MaxSessionDuration {
		cur.Spec.MaxSessionDuration = &s
	}
	cur.Spec.Tags = nil
	for k, v := range b.Spec.Tags {
		if got, _ := role.TagValue(o.Tags, k); got == v {
			if cur.Spec.Tags == nil {
				cur.Spec.Tags = map[string]string{}
			}
			cur.Spec.Tags[k] = v
		}
	}
	check := in.Guard.Check(cur, in.Rules, in.Managed)
	if len(check.Invalid) == 0 && len(check.Violations) > 0 {
		removed = append(removed, check.Removed(cur))
		cur = check.Narrow(cur)
	} else if len(check.Invalid) > 0 {
		// What is left cannot even be checked: keep nothing.
		removed = append(removed, "every remaining permission ("+guard.Message(check.Invalid)+")")
		cur.Spec.Permissions, cur.Spec.ManagedPolicyArns = nil, nil
	}
	d := role.DesiredFor(in.Config, cur)
	d.Name = name
	d.Description = o.Description
	if check.Boundary != "" {
		d.Boundary = check.Boundary
	}
	return update(name, d, o, len(removed) > 0), strings.Join(slices.DeleteFunc(removed, func(s string) bool { return s == "" }), "; ")
}

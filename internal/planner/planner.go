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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Input is everything the reconciler gathered for one binding.
type Input struct {
	Binding *v1alpha1.PodIdentityBinding
	// Account is the AWS account the binding's role belongs in now ("" the
	// operator's own); Config shapes roles there.
	Account string
	Config  role.Config
	// Configs shape the roles of other accounts that still hold roles of
	// the binding (it moved between accounts), by account.
	Configs map[string]role.Config
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
	// Roles maps every key of Candidates (Key: account and name), and every
	// role IAM's ownership tags name for the binding, to what IAM has (nil:
	// no role).
	Roles map[string]*role.Observed
	// ForeignAssociation, when set, says why the binding cannot hold its
	// ServiceAccount with EKS Pod Identity: the ServiceAccount has an
	// association the binding does not own (a Retain record, someone
	// else's), which the operator never overwrites.
	ForeignAssociation string
	// Provider is what IAM says about the cluster's OIDC provider; nil when
	// it is not checked.
	Provider *oidcprovider.State
	// KeepRoles: the binding is deleted with its CRD; its roles are kept
	// (Retain records) whatever its deletionPolicy and the guardrails say.
	KeepRoles bool
	// Chain, set when Account is not the operator's own (the cluster's), or
	// when the binding's current role is in another account and bound
	// through a hop (a plan may keep it), is how EKS Pod Identity reaches
	// a role there (see Chain).
	Chain *Chain
}

// Chain: EKS Pod Identity with a role in another account than the
// cluster's. The association maps the ServiceAccount to a hop role in the
// cluster's account (key "", named by HopName), which EKS assumes with the
// exact Pod Identity trust, and names the binding's role as its target
// role: EKS assumes it with the hop role's credentials and the
// association's external ID. The hop role may only assume the target; the
// target trusts only the hop role with that external ID.
type Chain struct {
	// Home shapes roles in the cluster's account (the operator's own).
	Home role.Config
	// ExternalID is the binding's association's ("" none yet).
	ExternalID string
}

// HopKey is the key of a binding's hop role: a name of the generated-name
// space of the cluster's account that no binding's role has ("_hop" after
// the binding's name, which cannot contain "_").
func HopKey(home role.Config, b *v1alpha1.PodIdentityBinding) string {
	return Key("", naming.RoleName(home.RoleNamePrefix, home.ClusterName, b.Namespace, b.Name+"_hop"))
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

// Plan is the outcome for one binding: every step the reconciler applies,
// in order (Before, then Bind or Release, then After, then the finalizer),
// and the conditions that report it once every step succeeded.
type Plan struct {
	// Policy names the policy of the chain that decided the plan.
	Policy string
	// Before runs first, in order: the role the ServiceAccount will point at
	// is created or updated, and roles that must lose access go.
	Before []Action
	// Current is the role the ServiceAccount is bound to once Before
	// succeeded ("" none: the binding's ServiceAccounts are released).
	Current string
	// ServiceAccount is the ServiceAccount to bind to Current.
	ServiceAccount string
	// Identity is the mechanism that binds it: the one the role's trust
	// is rendered for (the spec's, narrowed by guardrails; for an invalid
	// spec, the one in effect).
	Identity identity.Kind
	// Bind (when Current is set) binds ServiceAccount to Current, then lets
	// go of what the binding bound before; Release (otherwise) lets go of
	// the binding's ServiceAccounts. Exactly one of them is set.
	Bind    *Bind
	Release *Release
	// After runs once the ServiceAccount points at Current: roles the
	// binding no longer uses are deleted or retained.
	After []Action
	// RemoveFinalizer: the binding is being deleted and, once every step
	// succeeded, nothing of it is left to clean up.
	RemoveFinalizer bool
	// Conditions are the binding's conditions once every step succeeded.
	Conditions []metav1.Condition

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
	// Owned lists the observed roles the binding owns (key -> ID).
	Owned map[string]string
	// Forget lists roles status records as owned that IAM no longer has
	// (deleted out of band, or re-recorded from a stale copy after the
	// operator deleted them): the record goes, nothing else happens.
	Forget []string
}

// Bind makes the pods of ServiceAccount obtain the plan's Current role with
// Identity. The new binding is set up before the old one is let go of:
// then the mechanisms in Unbind are released for ServiceAccount (a switch
// of mechanism), and Previous (another ServiceAccount the roles trusted
// before) is released.
type Bind struct {
	ServiceAccount string
	Identity       identity.Kind
	Unbind         []identity.Kind
	Previous       *Release
	// Hop, when set, is the key of the hop role EKS assumes first (Chain);
	// the plan's Current role is then the association's target role.
	Hop string
}

// Release lets go of ServiceAccounts: what every mechanism in Identities
// bound for them, then the ServiceAccounts themselves (their annotations
// removed, or the ServiceAccount deleted when the operator created it).
// Retain keeps them as Retain records instead.
type Release struct {
	ServiceAccounts []string
	Identities      []identity.Kind
	Retain          bool
}

// Key names a role in an account: the bare name in the operator's own
// account, "<account>:<name>" in another (IAM role names contain no ":").
func Key(account, name string) string {
	if account == "" || name == "" {
		return name
	}
	return account + ":" + name
}

// SplitKey is the account and the name of a Key.
func SplitKey(key string) (account, name string) {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// Candidates are the role keys the planner must see: the spec's role name
// in the binding's account, the status's current role, every role the
// status records as owned and, when deleting, the generated name.
func Candidates(cfg role.Config, account string, b *v1alpha1.PodIdentityBinding) []string {
	keys := []string{Key(account, role.Name(cfg, b)), Key(b.Status.Account, b.Status.RoleName)}
	for _, r := range b.Status.OwnedRoles {
		keys = append(keys, Key(r.Account, r.Name))
	}
	if !b.DeletionTimestamp.IsZero() {
		keys = append(keys, Key(account, role.Name(cfg, withoutRoleName(b))))
	}
	var out []string
	for _, k := range keys {
		if k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func withoutRoleName(b *v1alpha1.PodIdentityBinding) *v1alpha1.PodIdentityBinding {
	c := b.DeepCopy()
	c.Spec.RoleName = ""
	return c
}

// KnownID is the unique ID the binding recorded for a role key ("" none):
// from status.ownedRoles, or status.roleId for bindings written before
// ownedRoles existed.
func KnownID(b *v1alpha1.PodIdentityBinding, key string) string {
	account, name := SplitKey(key)
	for _, r := range b.Status.OwnedRoles {
		if r.Name == name && r.Account == account {
			return r.ID
		}
	}
	if b.Status.RoleName == name && b.Status.Account == account {
		return b.Status.RoleID
	}
	return ""
}

// configOf is the configuration of the account a role key is in.
func (in Input) configOf(key string) role.Config {
	if account, _ := SplitKey(key); account != in.Account {
		if c, ok := in.Configs[account]; ok {
			return c
		}
	}
	return in.Config
}

// situation is what every policy of the chain reads: the input and what
// follows from it for any plan.
type situation struct {
	in    Input
	b     *v1alpha1.PodIdentityBinding
	check guard.Result
	// owned are the observed roles the binding owns.
	owned map[string]*role.Observed
	// primary is the role status names as current, when the binding owns it.
	primary string
	// deletionPolicy is the one in effect.
	deletionPolicy v1alpha1.DeletionPolicy
	// narrowed is the spec narrowed by the guardrails (effective), once read.
	narrowed *v1alpha1.PodIdentityBinding
	// targetKey and targetRole are target's answer, once computed (three
	// policies ask, and the sweep plans every binding every period).
	targetKey  *string
	targetRole role.Desired
}

// A policy decides the plan of the bindings it covers and reports false
// for the others. Compute asks the chain's policies in order; the first
// that decides wins, and the last decides every binding.
type policyFunc func(s *situation) (Plan, bool)

var chain = []struct {
	name   string
	decide policyFunc
}{
	{"Deleting", deleting},
	{"ServiceAccountHeld", serviceAccountHeld},
	{"InvalidSpec", invalidSpec},
	{"RoleNameTaken", roleNameTaken},
	{"NothingAllowed", nothingAllowed},
	{"Converge", converge},
}

// Compute is the pure planning step: the first policy of the chain that
// covers the binding decides its roles, then finish adds the ServiceAccount
// step, the finalizer and the conditions the same way for every policy.
func Compute(in Input) Plan {
	s := newSituation(in)
	for _, pol := range chain {
		if p, ok := pol.decide(s); ok {
			p.Policy = pol.name
			return s.finish(p)
		}
	}
	panic("planner: the last policy decides every binding")
}

func newSituation(in Input) *situation {
	b := in.Binding
	s := &situation{in: in, b: b, owned: map[string]*role.Observed{}}
	// Every observed role counts, not only Candidates: the reconciler also
	// observes the roles IAM's tags name for the binding.
	for name, o := range in.Roles {
		if o != nil && role.OwnedBy(o, KnownID(b, name), in.configOf(name), b.Namespace, b.Name) {
			s.owned[name] = o
		}
	}
	s.check = in.Guard.Check(b, in.Rules, in.Managed)
	s.deletionPolicy = b.Spec.DeletionPolicy
	if s.check.ForceDelete {
		s.deletionPolicy = v1alpha1.DeletionPolicyDelete
	}
	if in.KeepRoles && s.deleting() {
		s.deletionPolicy = v1alpha1.DeletionPolicyRetain
	}
	if key := Key(b.Status.Account, b.Status.RoleName); key != "" {
		if _, ok := s.owned[key]; ok {
			s.primary = key
		}
	}
	return s
}

func (s *situation) deleting() bool { return !s.b.DeletionTimestamp.IsZero() }

func (s *situation) retain() bool { return s.deletionPolicy == v1alpha1.DeletionPolicyRetain }

// ownedExcept lists the owned roles but one, sorted.
func (s *situation) ownedExcept(except string) []string {
	var names []string
	for n := range s.owned {
		if n != except {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// retire lets go of a role the binding no longer uses: deleted, or tagged
// as a Retain record (no write when it already is one).
func (s *situation) retire(name string) Action {
	o := s.owned[name]
	if !s.retain() {
		return Action{Op: OpDelete, Name: name, ID: o.ID}
	}
	a := Action{Op: OpRetain, Name: name, ID: o.ID}
	if v, _ := role.TagValue(o.Tags, role.TagRetained); v != "true" {
		a.Diff = role.TagPlan(map[string]string{role.TagRetained: "true"})
	}
	return a
}

// retireAllBut retires every owned role but one.
func (s *situation) retireAllBut(except string) []Action {
	var out []Action
	for _, n := range s.ownedExcept(except) {
		out = append(out, s.retire(n))
	}
	return out
}

// deleting: a deleted binding retires every role it owns.
func deleting(s *situation) (Plan, bool) {
	if !s.deleting() {
		return Plan{}, false
	}
	return Plan{Before: s.retireAllBut(""), Reason: v1alpha1.ReasonDeleting,
		Message: "cleaning up the IAM role and ServiceAccount annotation"}, true
}

// serviceAccountHeld: a binding that cannot hold its ServiceAccount owns no
// role any pod can use (deleted, or parked under Retain). An invalid spec
// keeps serving the ServiceAccount the roles trust now, so that is the one
// it must still hold.
func serviceAccountHeld(s *situation) (Plan, bool) {
	b, in := s.b, s.in
	holder, contested := in.Holder, b.Spec.ServiceAccountName
	if len(s.check.Invalid) > 0 && in.CurrentHolder != "" {
		holder, contested = in.CurrentHolder, currentServiceAccount(b)
	}
	foreign := holder == "" && in.ForeignAssociation != "" && len(s.check.Invalid) == 0 &&
		in.Config.Mechanism(s.effective()).Kind() == identity.KindEKSPodIdentity
	if holder == "" && !foreign {
		return Plan{}, false
	}
	fate := "deleted"
	if s.retain() {
		fate = "stripped of every permission and trust"
	}
	p := Plan{Reason: v1alpha1.ReasonServiceAccountConflict}
	if foreign {
		p.Reason = v1alpha1.ReasonAssociationConflict
	}
	for _, n := range s.ownedExcept("") {
		if s.retain() {
			p.Before = append(p.Before, park(in.configOf(n), b, n, s.owned[n]))
		} else {
			p.Before = append(p.Before, Action{Op: OpDelete, Name: n, ID: s.owned[n].ID})
		}
	}
	p.Message = fmt.Sprintf("ServiceAccount %s is already bound by PodIdentityBinding %s (the older binding wins); point this binding at another ServiceAccount or delete one of them. Until then this binding's roles are %s",
		contested, holder, fate)
	if foreign {
		p.Message = in.ForeignAssociation + ". Until then this binding's roles are " + fate
	}
	return p, true
}

// invalidSpec: an invalid spec is never applied; the current role is held
// to what the spec and the guardrails allow (never widened), and its trust
// and tags are still corrected.
func invalidSpec(s *situation) (Plan, bool) {
	if len(s.check.Invalid) == 0 {
		return Plan{}, false
	}
	b := s.b
	p := Plan{Reason: v1alpha1.ReasonInvalidSpec, Message: "invalid spec: " + guard.Message(s.check.Invalid)}
	if s.primary != "" {
		a, removed := narrowCurrent(s.in, s.primary, s.owned[s.primary])
		p.Before = append(p.Before, a)
		p.Current, p.ServiceAccount = s.primary, currentServiceAccount(b)
		p.Identity = s.in.Config.MechanismOf(b.Status.Identity).Kind()
		if removed != "" {
			p.Message += ". Removed from the role because the spec or the guardrails do not allow it: " + removed
		}
	}
	p.After = s.retireAllBut(s.primary)
	return p, true
}

// target is the role name the spec asks for, with the role the (narrowed)
// spec renders; "" when a guardrail forbids the name and the binding has
// no current role.
func (s *situation) target() (string, role.Desired) {
	if s.targetKey == nil {
		key := s.primary
		if !s.check.RoleNameForbidden {
			key = Key(s.in.Account, "")
		}
		s.targetRole = s.desiredFor(key)
		if !s.check.RoleNameForbidden {
			key = Key(s.in.Account, s.targetRole.Name)
		}
		s.targetKey = &key
	}
	return *s.targetKey, s.targetRole
}

// desiredFor is the role the (narrowed) spec renders in the account of a
// role key.
func (s *situation) desiredFor(key string) role.Desired {
	desired := role.DesiredFor(s.in.configOf(key), s.effective())
	if s.check.Boundary != "" {
		desired.Boundary = s.check.Boundary
	}
	return desired
}

// roleNameTaken: the spec's role name is a role the binding does not own;
// it is never touched, and the binding keeps serving from its current role,
// converged on the current spec.
func roleNameTaken(s *situation) (Plan, bool) {
	target, _ := s.target()
	obs := s.in.Roles[target]
	if _, owned := s.owned[target]; target == "" || obs == nil || owned {
		return Plan{}, false
	}
	b, cfg := s.b, s.in.Config
	p := Plan{Reason: v1alpha1.ReasonRoleConflict}
	p.Message = fmt.Sprintf("IAM role %s exists but is not tagged as owned by this binding (%s=%s, %s=%s, %s=%s); the operator will not modify it. Set spec.roleName to another name or remove the other role",
		describeKey(target), role.TagCluster, cfg.ClusterName, role.TagNamespace, b.Namespace, role.TagBinding, b.Name)
	if v, _ := role.TagValue(obs.Tags, role.TagRetained); v != "" {
		p.Message += fmt.Sprintf(" (it is a role a binding left with deletionPolicy Retain; remove its tag %s to let this binding adopt it)", role.TagRetained)
	}
	if s.primary != "" {
		p.Before = append(p.Before, update(s.primary, named(s.desiredFor(s.primary), s.primary), s.owned[s.primary], len(s.check.Violations) > 0))
		p.Current, p.ServiceAccount = s.primary, b.Spec.ServiceAccountName
		p.Identity = cfg.Mechanism(s.effective()).Kind()
	}
	p.After = s.retireAllBut(s.primary)
	return p, true
}

// effective is the spec the role follows: narrowed by the guardrails.
func (s *situation) effective() *v1alpha1.PodIdentityBinding {
	if len(s.check.Violations) == 0 {
		return s.b
	}
	if s.narrowed == nil {
		s.narrowed = s.check.Narrow(s.b)
	}
	return s.narrowed
}

// nothingAllowed: a new binding that breaks a guardrail (or whose role
// name a guardrail forbids) gets nothing in IAM.
func nothingAllowed(s *situation) (Plan, bool) {
	target, _ := s.target()
	if target != "" && (s.in.Roles[target] != nil || len(s.check.Violations) == 0 || s.primary != "") {
		return Plan{}, false
	}
	return Plan{Reason: v1alpha1.ReasonGuardrailViolation, Message: "violates guardrails: " + guard.Message(s.check.Violations),
		After: s.retireAllBut("")}, true
}

// converge: the role the spec asks for is created or converged (narrowed
// by the guardrails), and every other role the binding owns is retired
// once the ServiceAccount points at it.
func converge(s *situation) (Plan, bool) {
	target, desired := s.target()
	narrowed := len(s.check.Violations) > 0
	p := Plan{Current: target, ServiceAccount: s.b.Spec.ServiceAccountName, Identity: s.in.Config.Mechanism(s.effective()).Kind()}
	if obs := s.in.Roles[target]; obs == nil {
		p.Before = []Action{{Op: OpCreate, Name: target, Desired: named(desired, target), Narrowed: narrowed}}
	} else {
		p.Before = []Action{update(target, named(desired, target), obs, narrowed)}
	}
	p.After = s.retireAllBut(target)
	if narrowed {
		p.Reason = v1alpha1.ReasonGuardrailViolation
		p.Message = "violates guardrails: " + guard.Message(s.check.Violations) + ". Removed from the role: " + s.check.Removed(s.b)
		return p, true
	}
	if reason, msg := providerProblem(s.in); reason != "" {
		p.Applied, p.Reason, p.Message = true, reason, msg
		return p, true
	}
	p.Ready = true
	return p, true
}

// finish completes a policy's plan the same way for every policy: the
// ServiceAccount step, the finalizer and the conditions.
func (s *situation) finish(p Plan) Plan {
	b, cfg := s.b, s.in.Config
	hop := s.chain(&p)
	p.DeletionPolicy = s.deletionPolicy
	p.Owned = map[string]string{}
	for name, o := range s.owned {
		p.Owned[name] = o.ID
	}
	creating := map[string]bool{}
	for _, a := range p.Before {
		if a.Op == OpCreate {
			creating[a.Name] = true
		}
	}
	for _, r := range b.Status.OwnedRoles {
		key := Key(r.Account, r.Name)
		if o, seen := s.in.Roles[key]; seen && o == nil && !creating[key] {
			p.Forget = append(p.Forget, key)
		}
	}
	bound := Bound(cfg, b)
	switch {
	case s.deleting():
		// Retain keeps the ServiceAccount bound to the role it keeps; a
		// current role that no longer exists leaves nothing to keep, and an
		// annotation or association naming it would dangle.
		p.Release = &Release{ServiceAccounts: serviceAccounts(b), Identities: bound, Retain: s.retain() && s.primary != ""}
		p.RemoveFinalizer = true
	case p.Current != "":
		bind := &Bind{ServiceAccount: p.ServiceAccount, Identity: p.Identity}
		for _, k := range bound {
			if k != p.Identity {
				bind.Unbind = append(bind.Unbind, k)
			}
		}
		if old := b.Status.ServiceAccountName; old != "" && old != p.ServiceAccount {
			bind.Previous = &Release{ServiceAccounts: []string{old}, Identities: appendNew(bound, p.Identity)}
		}
		bind.Hop = hop
		p.Bind = bind
	default:
		p.Release = &Release{ServiceAccounts: serviceAccounts(b), Identities: bound}
	}
	p.Conditions = s.conditions(p)
	return p
}

// chain adapts a plan whose current role is in another account than the
// cluster's and is bound with EKS Pod Identity (Chain): the target role
// trusts the hop role with the association's external ID, and the hop role
// is created or converged first (the target's trust names it) and never
// retired while the chain serves. It returns the hop key ("" when no chain
// applies). A hop name held by a role the binding does not own leaves the
// ServiceAccount unbound (RoleConflict); no external ID yet leaves the
// binding not Ready (AssociationPending) until the association has one.
func (s *situation) chain(p *Plan) string {
	in := s.in
	// Only for a current role outside the cluster's account (a guardrail
	// may keep the binding on a role of the operator's own account).
	if account, _ := SplitKey(p.Current); in.Chain == nil || account == "" || p.Identity != identity.KindEKSPodIdentity {
		return ""
	}
	hop := HopKey(in.Chain.Home, s.b)
	if obs := in.Roles[hop]; obs != nil {
		if _, owned := s.owned[hop]; !owned {
			p.Current, p.ServiceAccount, p.Ready, p.Applied = "", "", false, false
			p.Reason = v1alpha1.ReasonRoleConflict
			p.Message = fmt.Sprintf("IAM role %s, the name of this binding's EKS Pod Identity hop role in the cluster's account, exists but is not tagged as owned by this binding; "+
				"the operator will not modify it. Remove it (or its %s tag, if it is a Retain record of this binding) to let the binding use it", describeKey(hop), role.TagRetained)
			return ""
		}
	}
	hopARN := in.Chain.Home.RoleARN(hop)
	targetARN := in.configOf(p.Current).RoleARN(s.currentName(*p))
	if obs := in.Roles[p.Current]; obs != nil && obs.ARN != "" {
		targetARN = obs.ARN
	}
	for i, a := range p.Before {
		if a.Name != p.Current || (a.Op != OpCreate && a.Op != OpUpdate) {
			continue
		}
		a.Desired.Trust = identity.TargetTrust(hopARN, in.Chain.ExternalID)
		if obs := in.Roles[a.Name]; a.Op == OpUpdate && obs != nil {
			a.Diff = role.Diff(a.Desired, *obs)
		}
		p.Before[i] = a
	}
	// The hop: the cluster's account's Pod Identity role for the
	// ServiceAccount, whose only permission is assuming the target.
	eff := s.effective()
	if p.Policy == "InvalidSpec" {
		eff = s.b.DeepCopy()
		eff.Spec.ServiceAccountName = p.ServiceAccount
		eff.Spec.Identity = s.b.Status.Identity
	}
	d := named(role.DesiredFor(in.Chain.Home, eff), hop)
	d.Description = fmt.Sprintf("EKS Pod Identity hop role for %s/%s in cluster %s: may only assume %s, managed by podidentity-operator",
		s.b.Namespace, p.ServiceAccount, in.Chain.Home.ClusterName, targetARN)
	perms := identity.HopPermissions(targetARN)
	d.Permissions, d.ManagedPolicies, d.MaxSessionDuration = &perms, nil, role.DefaultMaxSessionDuration
	step := Action{Op: OpCreate, Name: hop, Desired: d}
	if obs := in.Roles[hop]; obs != nil {
		step = update(hop, d, obs, false)
	}
	p.Before = append([]Action{step}, p.Before...)
	p.After = slices.DeleteFunc(p.After, func(a Action) bool { return a.Name == hop })
	if in.Chain.ExternalID == "" && p.Reason == "" {
		p.Ready, p.Applied = false, false
		p.Reason = v1alpha1.ReasonAssociationPending
		p.Message = "the EKS pod identity association is being created; the target role trusts the hop role " + describeKey(hop) +
			" once EKS has returned the association's external ID"
	}
	return hop
}

// currentName is the name of the plan's current role as it will be: the
// name its action gives it.
func (s *situation) currentName(p Plan) string {
	for _, a := range p.Before {
		if a.Name == p.Current && a.Desired.Name != "" {
			return a.Desired.Name
		}
	}
	_, name := SplitKey(p.Current)
	return name
}

// conditions report a plan whose every step succeeded.
func (s *situation) conditions(p Plan) []metav1.Condition {
	cond := func(t string, ok bool, reason, msg string) metav1.Condition {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg}
	}
	if s.deleting() {
		return []metav1.Condition{cond(v1alpha1.ConditionReady, false, p.Reason, p.Message)}
	}
	roleSynced := cond(v1alpha1.ConditionRoleSynced, true, v1alpha1.ReasonSynced, "IAM role "+describeKey(p.Current)+" matches the binding")
	saSynced := cond(v1alpha1.ConditionServiceAccountSynced, false, p.Reason, p.Message)
	if p.Bind != nil {
		saSynced = cond(v1alpha1.ConditionServiceAccountSynced, true, v1alpha1.ReasonSynced,
			s.in.Config.MechanismOf(v1alpha1.Identity(p.Identity)).Binds(p.ServiceAccount))
	}
	switch {
	case p.Ready:
		return []metav1.Condition{roleSynced, saSynced, cond(v1alpha1.ConditionReady, true, v1alpha1.ReasonAvailable,
			"pods using ServiceAccount "+p.ServiceAccount+" can assume IAM role "+describeKey(p.Current))}
	case p.Applied:
		// The role and the ServiceAccount are right; only using them fails.
		return []metav1.Condition{roleSynced, saSynced, cond(v1alpha1.ConditionReady, false, p.Reason, p.Message)}
	default:
		return []metav1.Condition{cond(v1alpha1.ConditionRoleSynced, false, p.Reason, p.Message), saSynced,
			cond(v1alpha1.ConditionReady, false, p.Reason, p.Message)}
	}
}

// Bound are the mechanisms that may have bound the binding's
// ServiceAccounts: the one it asks for now (a reconcile may have bound with
// it before its status was written), and the one status records.
func Bound(cfg role.Config, b *v1alpha1.PodIdentityBinding) []identity.Kind {
	recorded := identity.KindIRSA // bindings written before status.identity existed
	if b.Status.Identity != "" {
		recorded = identity.Kind(b.Status.Identity)
	}
	return appendNew([]identity.Kind{cfg.Mechanism(b).Kind()}, recorded)
}

func appendNew(kinds []identity.Kind, k identity.Kind) []identity.Kind {
	if slices.Contains(kinds, k) {
		return kinds
	}
	return append(slices.Clip(kinds), k)
}

// serviceAccounts are the binding's ServiceAccounts: the one its roles
// trust (status) and the one the spec names.
func serviceAccounts(b *v1alpha1.PodIdentityBinding) []string {
	out := []string{}
	for _, sa := range []string{b.Status.ServiceAccountName, b.Spec.ServiceAccountName} {
		if sa != "" && !slices.Contains(out, sa) {
			out = append(out, sa)
		}
	}
	return out
}

// named is the desired role under the name of another role key.
func named(d role.Desired, key string) role.Desired {
	_, d.Name = SplitKey(key)
	return d
}

// describeKey names a role key for messages.
func describeKey(key string) string {
	if account, name := SplitKey(key); account != "" {
		return name + " (account " + account + ")"
	}
	return key
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
	d := named(role.DesiredFor(cfg, b), name)
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
	cfg := in.configOf(name)
	if s := role.DesiredFor(cfg, b).MaxSessionDuration; s < *cur.Spec.MaxSessionDuration {
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
	d := named(role.DesiredFor(cfg, cur), name)
	d.Description = o.Description
	if check.Boundary != "" {
		d.Boundary = check.Boundary
	}
	return update(name, d, o, len(removed) > 0), strings.Join(slices.DeleteFunc(removed, func(s string) bool { return s == "" }), "; ")
}

// Package guard decides whether a PodIdentityBinding may be applied: the
// shape checks the schema cannot express, IAM quotas, the IAM action catalog,
// the built-in guardrails and the admin's PodIdentityGuardrails. The webhook
// and the reconciler both call it, so a binding that slipped past admission
// is caught before anything reaches IAM. Pure logic, no I/O.
package guard

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/bounded"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// IAM quotas (IAM counts policy sizes without whitespace).
const (
	DefaultTrustPolicySize        = 2048
	MaxTrustPolicySize            = 4096
	InlinePolicySizePerRole       = 10240
	DefaultManagedPoliciesPerRole = 10
	MaxManagedPoliciesPerRole     = 20
	TagsPerRole                   = 50
	RoleNameLength                = 64
	PathLength                    = 512
)

// BuiltinName names the built-in guardrail in messages.
const BuiltinName = "built-in"

// Rule is one guardrail in effect for a namespace.
type Rule struct {
	Name                        string
	AllowedActions              []string
	DeniedActions               []string
	AllowedResources            []string
	AllowedManagedPolicyArns    []string
	RequiredPermissionsBoundary string
	MaxSessionDuration          *int32
	ForbidRetain                bool
	ForbidPodRestarts           bool
	RoleNamePattern             string
	AllowedAssumableRoles       []string
	AllowedRunAsActions         []string
	AllowedIdentities           []v1alpha1.Identity
}

// FromGuardrail turns a PodIdentityGuardrail into a Rule.
func FromGuardrail(g *v1alpha1.PodIdentityGuardrail) Rule {
	return Rule{
		Name: g.Name, AllowedActions: g.Spec.AllowedActions, DeniedActions: g.Spec.DeniedActions,
		AllowedResources: g.Spec.AllowedResources, AllowedManagedPolicyArns: g.Spec.AllowedManagedPolicyArns,
		RequiredPermissionsBoundary: g.Spec.RequiredPermissionsBoundary, MaxSessionDuration: g.Spec.MaxSessionDuration,
		ForbidRetain: g.Spec.ForbidRetain, ForbidPodRestarts: g.Spec.ForbidPodRestarts, RoleNamePattern: g.Spec.RoleNamePattern,
		AllowedAssumableRoles: g.Spec.AllowedAssumableRoles, AllowedRunAsActions: g.Spec.AllowedRunAsActions,
		AllowedIdentities: g.Spec.AllowedIdentities,
	}
}

// Finding is one problem with a binding.
type Finding struct {
	Field   string
	Rule    string // guardrail name for violations
	Message string
}

func (f Finding) String() string {
	if f.Rule != "" {
		return fmt.Sprintf("%s: %s (guardrail %s)", f.Field, f.Message, f.Rule)
	}
	return f.Field + ": " + f.Message
}

// Result of checking a binding.
type Result struct {
	// Invalid findings make the spec unusable (InvalidSpec).
	Invalid []Finding
	// Violations break a guardrail (GuardrailViolation).
	Violations []Finding
	// Warnings are risky but allowed.
	Warnings []string

	// What fail-closed narrowing removes from the role.
	DropStatements map[int]bool
	DropManaged    map[string]bool
	SessionCap     *int32
	// ForceDelete: a guardrail forbids deletionPolicy Retain, so roles are
	// deleted, never retained.
	ForceDelete bool
	// RoleNameForbidden: spec.roleName does not match a guardrail's
	// roleNamePattern; the binding keeps its current role and gets no new one.
	RoleNameForbidden bool
	// PodRestartsForbidden: a guardrail forbids podRestartPolicy Rollout.
	PodRestartsForbidden bool
	// Boundary is the permissions boundary the guardrails require ("" none).
	Boundary string
	// Identities are the mechanisms every selecting guardrail allows (nil:
	// any), when the binding asks for another.
	Identities []v1alpha1.Identity
}

// Message joins the findings of a kind for a condition or admission
// message: each distinct finding once, the first few of them and how many
// more there are (bounded.List), however many the spec produces.
func Message(fs []Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return bounded.List(parts, "; ")
}

// Checker holds what checks depend on besides the binding.
type Checker struct {
	Catalog *catalog.Catalog
	// RoleConfig renders the documents whose sizes are checked.
	RoleConfig role.Config
	// TrustPolicySize and ManagedPoliciesPerRole are the account's quotas.
	TrustPolicySize        int
	ManagedPoliciesPerRole int
	// Builtins enables the built-in guardrails.
	Builtins bool
}

// ManagedPolicy is the default version of a managed policy as IAM returned
// it, or why it could not be read.
type ManagedPolicy struct {
	VersionID string
	Document  policy.Document
	Err       error
}

// Managed maps managed policy ARNs to their default versions. A nil Managed
// means the documents were not read (admission without IAM access): only the
// ARNs are checked. A non-nil Managed that lacks an ARN the binding names
// counts as unreadable, and unreadable policies fail closed.
type Managed map[string]ManagedPolicy

// Check runs every check on a binding under the rules selecting its
// namespace. The managed policies' documents are held to the same built-in
// guardrails and rules as the inline statements.
func (c Checker) Check(b *v1alpha1.PodIdentityBinding, rules []Rule, managed Managed) Result {
	r := Result{DropStatements: map[int]bool{}, DropManaged: map[string]bool{}}
	ex := &expander{cat: c.Catalog, memo: map[string]expansion{}}
	expansions := map[string][]catalog.Action{}

	// Shape.
	sids := map[string]bool{}
	for i, s := range b.Spec.Permissions {
		field := fmt.Sprintf("spec.permissions[%d]", i)
		if len(s.Actions) == 0 {
			r.Invalid = append(r.Invalid, Finding{Field: field + ".actions", Message: "must not be empty"})
		}
		if len(s.Resources) == 0 {
			r.Invalid = append(r.Invalid, Finding{Field: field + ".resources", Message: "must not be empty"})
		}
		if s.Effect != "" && s.Effect != v1alpha1.EffectAllow && s.Effect != v1alpha1.EffectDeny {
			r.Invalid = append(r.Invalid, Finding{Field: field + ".effect", Message: "must be Allow or Deny"})
		}
		if s.Sid != "" {
			if sids[s.Sid] {
				r.Invalid = append(r.Invalid, Finding{Field: field + ".sid", Message: fmt.Sprintf("%q is used twice", s.Sid)})
			}
			sids[s.Sid] = true
		}
	}
	for k := range b.Spec.Tags {
		if role.IsReservedTag(k) {
			r.Invalid = append(r.Invalid, Finding{Field: "spec.tags", Message: fmt.Sprintf("key %q uses the reserved prefix %s (tag keys are case-insensitive)", k, role.ReservedTagPrefix)})
		}
	}
	if c.RoleConfig.Identity(b) == v1alpha1.IdentityEKSPodIdentity && c.RoleConfig.PodIdentity == nil {
		r.Invalid = append(r.Invalid, Finding{Field: "spec.identity", Message: "EKSPodIdentity needs the operator to run with " +
			"--eks-cluster-name (it creates the pod identity association in that cluster); use IRSA or ask the cluster's administrator"})
	}
	// Quotas before the catalog: a spec IAM would refuse anyway is not
	// expanded (its cost would be the tenant's to choose).
	c.checkQuotas(b, &r)
	// The switches depend on the guardrails alone, so an invalid spec
	// cannot skip them (a typo plus deletionPolicy Retain must not keep a
	// role a guardrail says goes with its binding).
	for _, rule := range rules {
		switches(b, c.RoleConfig.Identity(b), rule, &r)
	}
	if c.Builtins {
		c.roleNameScope(b, &r)
	}
	if len(r.Invalid) > 0 {
		return r
	}

	// Catalog: each distinct pattern once, within MaxCheckWork.
	for i, s := range b.Spec.Permissions {
		for j, a := range s.Actions {
			if _, done := expansions[a]; done {
				continue
			}
			exp, err := ex.expand(a, true)
			if errors.Is(err, errTooMuchWork) {
				r.Invalid = append(r.Invalid, Finding{Field: "spec.permissions", Message: fmt.Sprintf(
					"the action patterns are too many to check: over %d comparisons with the IAM action catalog at spec.permissions[%d].actions[%d]; "+
						"use fewer distinct wildcard patterns (a service's \"*\" covers its other patterns)", MaxCheckWork, i, j)})
				return r
			}
			if err != nil {
				r.Invalid = append(r.Invalid, Finding{Field: fmt.Sprintf("spec.permissions[%d].actions[%d]", i, j), Message: err.Error()})
				continue
			}
			expansions[a] = exp
		}
	}
	if len(r.Invalid) > 0 {
		return r
	}

	grants := c.grants(b, expansions, managed, ex, &r)
	memo := matchMemo{}

	// Warnings.
	for _, g := range grants {
		if g.managed != "" {
			continue
		}
		if slices.Contains(g.resources, "*") {
			if w := firstWrite(g.actions, g.exp); w != "" {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s grants write actions (such as %s) on every resource (\"*\"); name the resources it needs", g.field, w))
			}
		}
	}

	// Guardrails.
	if c.Builtins {
		c.builtins(grants, rules, memo, &r)
	}
	for i, rule := range rules {
		c.rule(b, i, rule, grants, memo, &r)
	}
	if c.RoleConfig.PermissionsBoundaryARN != "" && r.Boundary != "" && r.Boundary != c.RoleConfig.PermissionsBoundaryARN {
		r.Violations = append(r.Violations, Finding{Field: "spec", Rule: BuiltinName,
			Message: fmt.Sprintf("a guardrail requires permissions boundary %s, which would replace the operator's boundary %s", r.Boundary, c.RoleConfig.PermissionsBoundaryARN)})
		r.Boundary = c.RoleConfig.PermissionsBoundaryARN
	}
	return r
}

func (c Checker) checkQuotas(b *v1alpha1.PodIdentityBinding, r *Result) {
	d := role.DesiredFor(c.RoleConfig, b)
	if trust, err := d.Trust.JSON(); err == nil {
		if n := policy.Size(trust); n > c.trustLimit() {
			msg := fmt.Sprintf("the trust policy would be %d characters, over IAM's limit of %d", n, c.trustLimit())
			if extra := len(c.RoleConfig.AdditionalProviders); extra > 0 {
				msg += fmt.Sprintf(" with %d issuers (this cluster's and %d from --additional-oidc-issuers); %d fit for this ServiceAccount and audience: "+
					"trust fewer issuers, use a shorter name, or raise the account's quota (up to %d, --trust-policy-size-limit)",
					extra+1, extra, c.issuersThatFit(b), MaxTrustPolicySize)
			}
			r.Invalid = append(r.Invalid, Finding{Field: "spec", Message: msg})
		}
	}
	if d.Permissions != nil {
		if doc, err := d.Permissions.JSON(); err == nil {
			if n := policy.Size(doc); n > InlinePolicySizePerRole {
				r.Invalid = append(r.Invalid, Finding{Field: "spec.permissions",
					Message: fmt.Sprintf("the permission policy would be %d characters (whitespace excluded), over IAM's limit of %d per role; use fewer statements, wildcards or managed policies", n, InlinePolicySizePerRole)})
			}
		}
	}
	if n := len(b.Spec.ManagedPolicyArns); n > c.managedLimit() {
		r.Invalid = append(r.Invalid, Finding{Field: "spec.managedPolicyArns", Message: fmt.Sprintf("%d managed policies, over the limit of %d per role", n, c.managedLimit())})
	}
	if n := len(d.Tags); n > TagsPerRole {
		r.Invalid = append(r.Invalid, Finding{Field: "spec.tags", Message: fmt.Sprintf("%d tags with the 3 ownership tags, over IAM's limit of %d", n, TagsPerRole)})
	}
	if len(d.Name) > RoleNameLength {
		r.Invalid = append(r.Invalid, Finding{Field: "spec.roleName", Message: fmt.Sprintf("longer than %d characters", RoleNameLength)})
	}
	if len(d.Path) > PathLength {
		r.Invalid = append(r.Invalid, Finding{Field: "spec", Message: fmt.Sprintf("role path longer than %d characters", PathLength)})
	}
}

// issuersThatFit is how many issuers (this cluster's first) a trust policy
// for b can name within the quota.
func (c Checker) issuersThatFit(b *v1alpha1.PodIdentityBinding) int {
	cfg := c.RoleConfig
	all := cfg.AdditionalProviders
	for k := len(all); k >= 0; k-- {
		cfg.AdditionalProviders = all[:k]
		trust, err := role.DesiredFor(cfg, b).Trust.JSON()
		if err == nil && policy.Size(trust) <= c.trustLimit() {
			return k + 1
		}
	}
	return 0
}

func (c Checker) trustLimit() int {
	if c.TrustPolicySize > 0 {
		return c.TrustPolicySize
	}
	return DefaultTrustPolicySize
}

func (c Checker) managedLimit() int {
	if c.ManagedPoliciesPerRole > 0 {
		return c.ManagedPoliciesPerRole
	}
	return DefaultManagedPoliciesPerRole
}

// MaxCheckWork bounds what checking one spec's actions may cost: the
// comparisons of its distinct action patterns with the catalog plus the
// actions they expand to (issue 17, defect 5). Typical specs cost a few
// thousand; a spec over it is InvalidSpec.
const MaxCheckWork = 200_000

var errTooMuchWork = errors.New("over the check's work budget")

type expansion struct {
	actions []catalog.Action
	err     error
}

// expander expands each distinct action pattern once per check (patterns
// are compared case-insensitively and a run of * means what one * means).
type expander struct {
	cat  *catalog.Catalog
	memo map[string]expansion
	work int
}

func (e *expander) expand(pattern string, budgeted bool) ([]catalog.Action, error) {
	key := normalisePattern(pattern)
	if x, ok := e.memo[key]; ok {
		return x.actions, x.err
	}
	cost := e.cat.Cost(pattern)
	if budgeted && e.work+cost > MaxCheckWork {
		return nil, errTooMuchWork
	}
	x, err := e.cat.Expand(pattern)
	if budgeted {
		e.work += cost + len(x)
	}
	e.memo[key] = expansion{actions: x, err: err}
	return x, err
}

// normalisePattern is the pattern in lower case with runs of * collapsed.
func normalisePattern(p string) string {
	p = strings.ToLower(p)
	for strings.Contains(p, "**") {
		p = strings.ReplaceAll(p, "**", "*")
	}
	return p
}

// distinct returns the values without repeats, in first-seen order (the
// slice itself when there are none).
func distinct(values []string) []string {
	seen := make(map[string]bool, len(values))
	out := values[:0:0]
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	if len(out) == len(values) {
		return values
	}
	return out
}

// Builtins denied by default besides IAM writes, organizations and account:
// actions that grant an identity elsewhere (EKS access entries, IAM Identity
// Center, the identity store). Patterns, matched case-insensitively.
var BuiltinDenied = []string{
	"eks:CreateAccessEntry", "eks:UpdateAccessEntry", "eks:AssociateAccessPolicy",
	"eks:AssociateIdentityProviderConfig", "eks:UpdateClusterConfig",
	"sso:Create*", "sso:Update*", "sso:Put*", "sso:Attach*", "sso:Associate*", "sso:Provision*", "sso:Import*",
	"sso-directory:Create*", "sso-directory:Update*", "sso-directory:Add*", "sso-directory:Enable*",
	"identitystore:Create*", "identitystore:Update*", "identitystore:Add*",
}

var builtinDeniedLower = lowered(BuiltinDenied)

// RunAsOtherRole are actions that can run code with the permissions of a role
// or user already attached to a resource (or as another principal): denied
// by the built-in guardrails unless a guardrail's allowedRunAsActions
// allows them for the namespace.
var RunAsOtherRole = []string{
	"lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:InvokeFunction",
	"codebuild:StartBuild", "codebuild:StartBuildBatch", "codebuild:UpdateProject",
	"ssm:SendCommand", "ssm:StartSession", "ssm:StartAutomationExecution",
	"ec2-instance-connect:SendSSHPublicKey", "glue:UpdateDevEndpoint", "glue:UpdateJob",
	"cloudformation:UpdateStack", "cloudformation:CreateChangeSet", "ecs:RunTask", "ecs:ExecuteCommand",
	"sagemaker:CreatePresignedNotebookInstanceUrl", "states:StartExecution",
}

var runAsOtherRoleLower = lowered(RunAsOtherRole)

// grant is one Allow statement the role would carry: a spec statement or a
// statement of a managed policy's default version.
type grant struct {
	field     string
	actions   []string
	resources []string
	exp       map[string][]catalog.Action
	stmt      int    // index into spec.permissions, when managed == ""
	managed   string // managed policy ARN
	// unknown are actions of a managed policy the catalog does not know
	// (newer than the catalog): checked by their text, conservatively.
	unknown []string
}

// sensitiveServices are services whose unknown actions cannot be let through.
var sensitiveServices = []string{"iam", "sts", "organizations", "account", "eks", "sso", "sso-directory", "identitystore"}

// grants lists the Allow statements of the spec and of every readable managed
// policy; a managed policy that cannot be read or checked is dropped (fail
// closed).
func (c Checker) grants(b *v1alpha1.PodIdentityBinding, exp map[string][]catalog.Action, managed Managed, ex *expander, r *Result) []grant {
	var out []grant
	for i, s := range b.Spec.Permissions {
		if isDeny(s) {
			continue
		}
		out = append(out, grant{field: fmt.Sprintf("spec.permissions[%d]", i), actions: distinct(s.Actions), resources: s.Resources, exp: exp, stmt: i})
	}
	if managed == nil {
		return out
	}
	for _, arn := range b.Spec.ManagedPolicyArns {
		unusable := func(why string) {
			r.Violations = append(r.Violations, Finding{Field: "spec.managedPolicyArns", Rule: BuiltinName, Message: arn + ": " + why})
			r.DropManaged[arn] = true
		}
		mp, ok := managed[arn]
		switch {
		case !ok:
			unusable("its document was not read; it cannot be checked against the guardrails")
			continue
		case mp.Err != nil:
			unusable("its default version cannot be read (" + mp.Err.Error() + "), so it cannot be checked against the guardrails")
			continue
		}
		mexp := map[string][]catalog.Action{}
		for j, st := range mp.Document.Statement {
			if !strings.EqualFold(st.Effect, "Allow") {
				continue
			}
			g := grant{field: fmt.Sprintf("managed policy %s statement %d", arn, j), actions: st.Action, resources: st.Resource, exp: mexp, managed: arn}
			// NotAction and NotResource allow everything but a list: treat
			// them as every action or every resource.
			if len(st.NotAction) > 0 || len(st.Action) == 0 {
				g.actions = []string{"*"}
			}
			if len(st.NotResource) > 0 || len(st.Resource) == 0 {
				g.resources = []string{"*"}
			}
			g.actions = distinct(g.actions)
			for _, a := range g.actions {
				// Managed documents are bounded by IAM (6,144 characters
				// each), not by the tenant: expanded without the budget.
				x, err := ex.expand(a, false)
				if err != nil {
					g.unknown = append(g.unknown, a)
					continue
				}
				mexp[a] = x
			}
			out = append(out, g)
		}
	}
	return out
}

// violate records a finding against a grant and marks what narrowing removes.
func (g grant) violate(r *Result, rule, msg string) {
	if g.managed != "" {
		r.Violations = append(r.Violations, Finding{Field: "spec.managedPolicyArns", Rule: rule, Message: g.field + " " + msg})
		r.DropManaged[g.managed] = true
		return
	}
	r.Violations = append(r.Violations, Finding{Field: g.field, Rule: rule, Message: msg})
	r.DropStatements[g.stmt] = true
}

// builtins: no "*", no IAM writes, no sts:AssumeRole*/AssumeRoot on a
// wildcard resource, no organizations or account actions, no identity grants
// outside IAM (BuiltinDenied). They keep a binding from granting its pods a
// way out of their role.
func (c Checker) builtins(grants []grant, rules []Rule, memo matchMemo, r *Result) {
	var assumable, runAs []string
	for _, rule := range rules {
		assumable = append(assumable, rule.AllowedAssumableRoles...)
		runAs = append(runAs, rule.AllowedRunAsActions...)
	}
	runAsLower := lowered(runAs)
	for _, g := range grants {
		for _, a := range g.unknown {
			svc, _, _ := strings.Cut(strings.ToLower(a), ":")
			if slices.Contains(sensitiveServices, svc) || strings.ContainsAny(svc, "*?") {
				g.violate(r, BuiltinName, fmt.Sprintf("grants %q, which the action catalog cannot check", a))
			}
		}
		wildcard := slices.ContainsFunc(g.resources, func(res string) bool { return strings.ContainsAny(res, "*?") })
		// Role assumption is allowed only on roles a guardrail names.
		assumeOK := len(assumable) > 0 && len(g.resources) > 0 &&
			!slices.ContainsFunc(g.resources, func(res string) bool { return !coveredByAny(res, assumable) })
		flags := fmt.Sprintf("b%t%t%t\x00", wildcard, assumeOK, g.managed != "")
		for _, a := range g.actions {
			if a == "*" || a == "*:*" {
				g.violate(r, BuiltinName, fmt.Sprintf("grants every action (%q)", a))
				continue
			}
			msg := memo.first(flags+a, func() string {
				for _, x := range g.exp[a] {
					if m := builtinFinding(a, x, wildcard, assumeOK, g.managed != "", runAsLower); m != "" {
						return m
					}
				}
				return ""
			})
			if msg != "" {
				g.violate(r, BuiltinName, msg)
			}
		}
	}
}

// builtinFinding is why the built-in guardrails deny one real action a
// pattern grants ("" when they do not).
func builtinFinding(a string, x catalog.Action, wildcard, assumeOK, managed bool, runAsAllowed []string) string {
	matches := func(ps []string) bool {
		return slices.ContainsFunc(ps, func(p string) bool { return matchLower(p, x) })
	}
	switch {
	case x.Service == "iam" && x.Level.IsWrite():
		return fmt.Sprintf("%q grants the IAM write action %s", a, x)
	case x.Service == "sts" && (strings.HasPrefix(x.Name, "AssumeRole") || x.Name == "AssumeRoot") && !assumeOK:
		if wildcard {
			return fmt.Sprintf("%q grants %s on a wildcard resource, which is every role", a, x)
		}
		return fmt.Sprintf("%q grants %s, which reaches any role that trusts its account; a guardrail's allowedAssumableRoles must name the roles", a, x)
	case (x.Service == "organizations" || x.Service == "account") && (!managed || x.Level.IsWrite()):
		// Managed policies such as ReadOnlyAccess read account details;
		// only their writes are escalations.
		return fmt.Sprintf("%q grants the %s action %s", a, x.Service, x)
	case matches(builtinDeniedLower):
		return fmt.Sprintf("%q grants %s, which gives an identity access outside IAM", a, x)
	case matches(runAsOtherRoleLower) && !matches(runAsAllowed):
		return fmt.Sprintf("%q grants %s, which runs code with another principal's permissions; a guardrail's allowedRunAsActions must allow it", a, x)
	}
	return ""
}

func (c Checker) rule(b *v1alpha1.PodIdentityBinding, ri int, rule Rule, grants []grant, memo matchMemo, r *Result) {
	key := strconv.Itoa(ri) + "\x00"
	for _, g := range grants {
		for _, a := range g.unknown {
			if len(rule.AllowedActions) > 0 {
				g.violate(r, rule.Name, fmt.Sprintf("grants %q, which the action catalog cannot check against the allowed actions", a))
			}
			for _, p := range rule.DeniedActions {
				if m, _ := path.Match(strings.ToLower(p), strings.ToLower(a)); m || p == "*" {
					g.violate(r, rule.Name, fmt.Sprintf("grants %q, which is denied", a))
				}
			}
		}
		for _, a := range g.actions {
			exp := g.exp[a]
			if denied := memo.first(key+"deny\x00"+a, func() string { return firstMatch(exp, rule.DeniedActions) }); denied != "" {
				g.violate(r, rule.Name, fmt.Sprintf("%q grants %s, which is denied", a, denied))
			}
			if len(rule.AllowedActions) > 0 {
				if out := memo.first(key+"allow\x00"+a, func() string { return firstNotMatched(exp, rule.AllowedActions) }); out != "" {
					g.violate(r, rule.Name, fmt.Sprintf("%q grants %s, which is not among the allowed actions", a, out))
				}
			}
		}
		if len(rule.AllowedResources) > 0 {
			for _, res := range g.resources {
				if !coveredByAny(res, rule.AllowedResources) {
					g.violate(r, rule.Name, fmt.Sprintf("resource %q is not among the allowed resources", res))
				}
			}
		}
	}
	if len(rule.AllowedManagedPolicyArns) > 0 {
		for _, arn := range b.Spec.ManagedPolicyArns {
			if !coveredByAny(arn, rule.AllowedManagedPolicyArns) {
				r.Violations = append(r.Violations, Finding{Field: "spec.managedPolicyArns", Rule: rule.Name, Message: fmt.Sprintf("%s is not an allowed managed policy", arn)})
				r.DropManaged[arn] = true
			}
		}
	}
	if rule.MaxSessionDuration != nil {
		session := role.DefaultMaxSessionDuration
		if b.Spec.MaxSessionDuration != nil {
			session = *b.Spec.MaxSessionDuration
		}
		if session > *rule.MaxSessionDuration {
			r.Violations = append(r.Violations, Finding{Field: "spec.maxSessionDuration", Rule: rule.Name,
				Message: fmt.Sprintf("%d seconds is over the cap of %d", session, *rule.MaxSessionDuration)})
			if r.SessionCap == nil || *rule.MaxSessionDuration < *r.SessionCap {
				v := *rule.MaxSessionDuration
				r.SessionCap = &v
			}
		}
	}
	if rule.RequiredPermissionsBoundary != "" {
		if r.Boundary != "" && r.Boundary != rule.RequiredPermissionsBoundary {
			r.Violations = append(r.Violations, Finding{Field: "spec", Rule: rule.Name,
				Message: fmt.Sprintf("requires permissions boundary %s but another guardrail requires %s", rule.RequiredPermissionsBoundary, r.Boundary)})
			return
		}
		r.Boundary = rule.RequiredPermissionsBoundary
	}
}

// switches evaluates a rule's switches (forbidRetain, forbidPodRestarts,
// roleNamePattern): they read only the guardrail and plain spec fields, so
// Check evaluates them before, and whatever the result of, the validity
// checks.
func switches(b *v1alpha1.PodIdentityBinding, kind v1alpha1.Identity, rule Rule, r *Result) {
	if len(rule.AllowedIdentities) > 0 && !slices.Contains(rule.AllowedIdentities, kind) {
		r.Violations = append(r.Violations, Finding{Field: "spec.identity", Rule: rule.Name,
			Message: fmt.Sprintf("%s is not allowed in this namespace (allowed: %v)", kind, rule.AllowedIdentities)})
		if r.Identities == nil {
			r.Identities = append([]v1alpha1.Identity(nil), rule.AllowedIdentities...)
		} else {
			r.Identities = slices.DeleteFunc(r.Identities, func(i v1alpha1.Identity) bool { return !slices.Contains(rule.AllowedIdentities, i) })
		}
	}
	if rule.ForbidRetain && b.Spec.DeletionPolicy == v1alpha1.DeletionPolicyRetain {
		r.Violations = append(r.Violations, Finding{Field: "spec.deletionPolicy", Rule: rule.Name,
			Message: "Retain is forbidden in this namespace; the role will be deleted with the binding"})
		r.ForceDelete = true
	}
	if rule.ForbidPodRestarts && b.Spec.PodRestartPolicy == v1alpha1.PodRestartPolicyRollout {
		r.Violations = append(r.Violations, Finding{Field: "spec.podRestartPolicy", Rule: rule.Name,
			Message: "Rollout is forbidden in this namespace; the operator does not restart its workloads"})
		r.PodRestartsForbidden = true
	}
	if rule.RoleNamePattern != "" && b.Spec.RoleName != "" && !Covers(rule.RoleNamePattern, b.Spec.RoleName) {
		r.Violations = append(r.Violations, Finding{Field: "spec.roleName", Rule: rule.Name,
			Message: fmt.Sprintf("%q does not match the allowed pattern %q", b.Spec.RoleName, rule.RoleNamePattern)})
		r.RoleNameForbidden = true
	}
}

// Schema limits of a PodIdentityBinding (the CRD's markers). The API server
// enforces them; admission re-checks them first, because an AdmissionReview
// sent straight to the webhook's port has not been through the API server
// (issue 17, defect 11).
const (
	MaxStatements      = 100
	MaxStatementItems  = 100
	MaxManagedPolicies = 20
	MaxSpecTags        = 45
)

// SchemaLimit says which of the CRD's limits a binding breaks ("" none).
func SchemaLimit(b *v1alpha1.PodIdentityBinding) string {
	if n := len(b.Spec.Permissions); n > MaxStatements {
		return fmt.Sprintf("spec.permissions has %d statements, over the limit of %d", n, MaxStatements)
	}
	for i, s := range b.Spec.Permissions {
		if len(s.Actions) > MaxStatementItems || len(s.Resources) > MaxStatementItems {
			return fmt.Sprintf("spec.permissions[%d] has %d actions and %d resources, over the limit of %d each", i, len(s.Actions), len(s.Resources), MaxStatementItems)
		}
	}
	if n := len(b.Spec.ManagedPolicyArns); n > MaxManagedPolicies {
		return fmt.Sprintf("spec.managedPolicyArns has %d entries, over the limit of %d", n, MaxManagedPolicies)
	}
	if n := len(b.Spec.Tags); n > MaxSpecTags {
		return fmt.Sprintf("spec.tags has %d entries, over the limit of %d", n, MaxSpecTags)
	}
	return ""
}

// RoleNamePrefixes are the prefixes an explicit spec.roleName of a binding
// in namespace may start with: "<namespace>_", "<namespace>." and the
// namespace's generated names, "<prefix><cluster>_<namespace>_". Namespace
// names have neither "_" nor ".", so no name of one namespace is a name of
// another (issue 17 defect 8, decision 61).
func RoleNamePrefixes(cfg role.Config, namespace string) []string {
	return []string{namespace + "_", namespace + ".", generatedSpace(cfg) + namespace + "_"}
}

// generatedSpace is the prefix of every generated role name of the cluster.
func generatedSpace(cfg role.Config) string {
	return naming.GeneratedPrefix(cfg.RoleNamePrefix, cfg.ClusterName)
}

// roleNameScope is the built-in rule for an explicit spec.roleName: it must
// start with one of RoleNamePrefixes and must not fall into the generated
// names of another namespace. Like the guardrails' roleNamePattern, a
// violation keeps the binding's current role and creates no new one.
func (c Checker) roleNameScope(b *v1alpha1.PodIdentityBinding, r *Result) {
	name := b.Spec.RoleName
	if name == "" {
		return
	}
	prefixes := RoleNamePrefixes(c.RoleConfig, b.Namespace)
	scoped := slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) })
	if gen := generatedSpace(c.RoleConfig); strings.HasPrefix(name, gen) && !strings.HasPrefix(name, prefixes[2]) {
		scoped = false // another namespace's generated names
	}
	if scoped {
		return
	}
	r.Violations = append(r.Violations, Finding{Field: "spec.roleName", Rule: BuiltinName, Message: fmt.Sprintf(
		"%q is not one of this namespace's role names: an explicit roleName must start with %q, %q or %q, so that no namespace can take another's role name",
		name, prefixes[0], prefixes[1], prefixes[2])})
	r.RoleNameForbidden = true
}

// Narrow returns a copy of the binding without what violates the guardrails:
// violating statements and managed policies removed, the session duration
// capped. Applying it can only narrow the role's access (fail closed).
func (r Result) Narrow(b *v1alpha1.PodIdentityBinding) *v1alpha1.PodIdentityBinding {
	out := b.DeepCopy()
	out.Spec.Permissions = nil
	for i, s := range b.Spec.Permissions {
		if !r.DropStatements[i] {
			out.Spec.Permissions = append(out.Spec.Permissions, s)
		}
	}
	out.Spec.ManagedPolicyArns = nil
	for _, arn := range b.Spec.ManagedPolicyArns {
		if !r.DropManaged[arn] {
			out.Spec.ManagedPolicyArns = append(out.Spec.ManagedPolicyArns, arn)
		}
	}
	if r.SessionCap != nil {
		out.Spec.MaxSessionDuration = r.SessionCap
	}
	if r.ForceDelete {
		out.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	}
	if r.Identities != nil {
		// The mechanism in effect when it is allowed, else the first allowed
		// (none allowed by every guardrail: IRSA, which binds nothing new
		// then, as the planner gives a violating new binding nothing).
		out.Spec.Identity = v1alpha1.IdentityIRSA
		if slices.Contains(r.Identities, b.Status.Identity) {
			out.Spec.Identity = b.Status.Identity
		} else if len(r.Identities) > 0 {
			out.Spec.Identity = r.Identities[0]
		}
	}
	return out
}

// Removed describes what Narrow removes, for the condition message.
func (r Result) Removed(b *v1alpha1.PodIdentityBinding) string {
	var parts []string
	idx := make([]int, 0, len(r.DropStatements))
	for i := range r.DropStatements {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		s := b.Spec.Permissions[i]
		name := fmt.Sprintf("statement %d", i)
		if s.Sid != "" {
			name += " (" + s.Sid + ")"
		}
		parts = append(parts, fmt.Sprintf("%s: %s on %s", name, strings.Join(s.Actions, ","), strings.Join(s.Resources, ",")))
	}
	for _, arn := range slices.Sorted(maps.Keys(r.DropManaged)) {
		parts = append(parts, "managed policy "+arn)
	}
	if r.SessionCap != nil {
		parts = append(parts, fmt.Sprintf("max session duration capped at %d", *r.SessionCap))
	}
	if r.ForceDelete {
		parts = append(parts, "deletionPolicy Retain (the role will be deleted)")
	}
	if r.RoleNameForbidden {
		parts = append(parts, "role name "+b.Spec.RoleName+" (the current role is kept)")
	}
	return bounded.List(parts, "; ")
}

func isDeny(s v1alpha1.PermissionStatement) bool { return s.Effect == v1alpha1.EffectDeny }

func firstWrite(actions []string, exp map[string][]catalog.Action) string {
	for _, a := range actions {
		for _, x := range exp[a] {
			if x.Level.IsWrite() {
				return x.String()
			}
		}
	}
	return ""
}

// matchMemo remembers, for one check, the result of matching an action
// pattern's expansion against a list of patterns: a pattern repeated in many
// statements (or "*", 20,000 actions) is matched once.
type matchMemo map[string]string

func (m matchMemo) first(key string, compute func() string) string {
	if v, ok := m[key]; ok {
		return v
	}
	v := compute()
	m[key] = v
	return v
}

func lowered(patterns []string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = strings.ToLower(p)
	}
	return out
}

// matchLower reports whether a lower-cased action pattern matches a real
// action (IAM compares action names case-insensitively).
func matchLower(p string, a catalog.Action) bool {
	return p == "*" || p == "*:*" || a.MatchKey(p)
}

func firstMatch(actions []catalog.Action, patterns []string) string {
	ps := lowered(patterns)
	for _, x := range actions {
		for _, p := range ps {
			if matchLower(p, x) {
				return x.String()
			}
		}
	}
	return ""
}

func firstNotMatched(actions []catalog.Action, patterns []string) string {
	ps := lowered(patterns)
	for _, x := range actions {
		ok := false
		for _, p := range ps {
			if ok = matchLower(p, x); ok {
				break
			}
		}
		if !ok {
			return x.String()
		}
	}
	return ""
}

func coveredByAny(value string, patterns []string) bool {
	for _, p := range patterns {
		if Covers(p, value) {
			return true
		}
	}
	return false
}

// Covers reports whether every string the pattern value can stand for
// (value's own * and ? are wildcards) is matched by pattern. It is
// conservative: a wildcard in value is covered only by a * in pattern (or a
// single-character ? by ?).
func Covers(pattern, value string) bool {
	if pattern == "" {
		return value == ""
	}
	switch pattern[0] {
	case '*':
		// * consumes any prefix of value, wildcards included.
		for i := 0; i <= len(value); i++ {
			if Covers(pattern[1:], value[i:]) {
				return true
			}
		}
		return false
	case '?':
		return value != "" && value[0] != '*' && Covers(pattern[1:], value[1:])
	default:
		return value != "" && value[0] == pattern[0] && Covers(pattern[1:], value[1:])
	}
}

// Package role computes the IAM role a binding should have, observes the role
// IAM has, diffs the two by meaning and applies only the differences.
package role

import (
	"fmt"
	"sort"
	"strings"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

// Ownership tag keys. A role is modified or deleted only when all three match
// the binding. IAM tag keys are case-insensitive, and so is every comparison
// of them here.
const (
	ReservedTagPrefix = "podidentity.io/"
	TagCluster        = "podidentity.io/cluster"
	TagNamespace      = "podidentity.io/namespace"
	TagBinding        = "podidentity.io/binding"
	// TagRetained marks a role that a binding with deletionPolicy Retain
	// left behind (the "Retain record"): the operator no longer manages it
	// and never adopts it by its tags.
	TagRetained = "podidentity.io/retained"
)

// IsReservedTag reports whether a tag key is one of the operator's (any case).
func IsReservedTag(key string) bool {
	return len(key) >= len(ReservedTagPrefix) && strings.EqualFold(key[:len(ReservedTagPrefix)], ReservedTagPrefix)
}

// TagValue returns the value of a tag key compared case-insensitively, and
// whether it is set. Several keys differing only in case (impossible in IAM,
// possible in emulators) with different values give "\x00conflict", which
// matches no real value.
func TagValue(tags map[string]string, key string) (string, bool) {
	value, found := "", false
	for k, v := range tags {
		if !strings.EqualFold(k, key) {
			continue
		}
		if found && v != value {
			return "\x00conflict", true
		}
		value, found = v, true
	}
	return value, found
}

// InlinePolicyName is the name of the inline policy holding spec.permissions.
const InlinePolicyName = "podidentity-permissions"

// DefaultMaxSessionDuration is IAM's default for a role.
const DefaultMaxSessionDuration int32 = 3600

// Config is the operator-level configuration that shapes every role.
type Config struct {
	ClusterName            string
	RoleNamePrefix         string
	RolePath               string
	PermissionsBoundaryARN string
	// ProviderARN is the IAM OIDC identity provider of the cluster.
	ProviderARN string
	// Issuer is the issuer's provider ID (see policy.ProviderID).
	Issuer string
	// AdditionalProviders are other clusters' providers every trust policy
	// also trusts for the same ServiceAccount (--additional-oidc-issuers).
	AdditionalProviders []policy.Provider
	// DefaultIdentity is the mechanism of bindings that name none
	// (--default-identity; empty: IRSA).
	DefaultIdentity v1alpha1.Identity
	// PodIdentity is EKS Pod Identity on this cluster (--eks-cluster-name);
	// nil when the operator cannot create associations.
	PodIdentity *identity.PodIdentity
}

// AccountID is the AWS account of the configuration's roles: the account
// of its OIDC provider ARN.
func (cfg Config) AccountID() string {
	parts := strings.SplitN(cfg.ProviderARN, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return parts[4]
}

// RoleARN is the ARN of a role of this configuration's account and path.
func (cfg Config) RoleARN(name string) string {
	parts := strings.SplitN(cfg.ProviderARN, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return "arn:" + parts[1] + ":iam::" + parts[4] + ":role" + cfg.RolePath + name
}

// Identity is the mechanism a binding asks for: its spec's, else the default.
func (cfg Config) Identity(b *v1alpha1.PodIdentityBinding) v1alpha1.Identity {
	switch {
	case b.Spec.Identity != "":
		return b.Spec.Identity
	case cfg.DefaultIdentity != "":
		return cfg.DefaultIdentity
	}
	return v1alpha1.IdentityIRSA
}

// Mechanism is the identity mechanism of a binding's role: the one it asks
// for, or IRSA when it asks for EKS Pod Identity and the operator cannot
// provide it (the guard reports that spec as invalid, so the role is never
// moved to a mechanism that cannot bind it).
func (cfg Config) Mechanism(b *v1alpha1.PodIdentityBinding) identity.Mechanism {
	return cfg.MechanismOf(cfg.Identity(b))
}

// MechanismOf is the mechanism named kind, IRSA when the operator cannot
// provide it (or kind is empty).
func (cfg Config) MechanismOf(kind v1alpha1.Identity) identity.Mechanism {
	if kind == v1alpha1.IdentityEKSPodIdentity && cfg.PodIdentity != nil {
		return *cfg.PodIdentity
	}
	return cfg.IRSA()
}

// IRSA is the IRSA mechanism of this configuration.
func (cfg Config) IRSA() identity.IRSA {
	return identity.IRSA{Provider: policy.Provider{ARN: cfg.ProviderARN, ID: cfg.Issuer}, Additional: cfg.AdditionalProviders}
}

// Desired is the role a binding should have.
type Desired struct {
	Name               string
	Path               string
	Description        string
	MaxSessionDuration int32
	Trust              policy.Document
	// Permissions is the inline policy, nil when the binding declares none.
	Permissions *policy.Document
	// ManagedPolicies is sorted.
	ManagedPolicies []string
	Tags            map[string]string
	// Boundary is the permissions boundary ARN; empty means the operator
	// does not manage the role's boundary.
	Boundary string
}

// Name returns the IAM role name of a binding: spec.roleName or the generated one.
func Name(cfg Config, b *v1alpha1.PodIdentityBinding) string {
	if b.Spec.RoleName != "" {
		return b.Spec.RoleName
	}
	return naming.RoleName(cfg.RoleNamePrefix, cfg.ClusterName, b.Namespace, b.Name)
}

// OwnershipTags are the tags that mark a role as a binding's.
func OwnershipTags(cfg Config, namespace, name string) map[string]string {
	return map[string]string{TagCluster: cfg.ClusterName, TagNamespace: namespace, TagBinding: name}
}

// OwnedBy reports whether an observed role is the binding's: its unique ID
// is the one the binding recorded when it created the role (knownID), or
// its tags mark it as the binding's. The ID keeps a role whose ownership tags
// were removed out of band recognisable, so the tags can be restored.
func OwnedBy(o *Observed, knownID string, cfg Config, namespace, name string) bool {
	if knownID != "" && o.ID == knownID {
		return true
	}
	// A Retain record is let go of: it is never adopted by its tags alone
	// (remove the retained tag to let a binding adopt it).
	if v, _ := TagValue(o.Tags, TagRetained); v != "" {
		return false
	}
	for k, v := range OwnershipTags(cfg, namespace, name) {
		if got, _ := TagValue(o.Tags, k); got != v {
			return false
		}
	}
	return true
}

// Audience returns the token audience a binding's trust policy requires.
func Audience(b *v1alpha1.PodIdentityBinding) string {
	if t := b.Spec.ServiceAccountToken; t != nil && t.Audience != "" {
		return t.Audience
	}
	return policy.DefaultAudience
}

// DesiredFor is the role a binding should have under the operator config.
func DesiredFor(cfg Config, b *v1alpha1.PodIdentityBinding) Desired {
	m := cfg.Mechanism(b)
	d := Desired{
		Name:               Name(cfg, b),
		Path:               cfg.RolePath,
		Description:        b.Spec.Description,
		MaxSessionDuration: DefaultMaxSessionDuration,
		Trust:              m.Trust(identity.Subject{Namespace: b.Namespace, ServiceAccount: b.Spec.ServiceAccountName, Audience: Audience(b)}),
		Tags:               map[string]string{},
		Boundary:           cfg.PermissionsBoundaryARN,
	}
	if d.Description == "" {
		d.Description = fmt.Sprintf("%s for %s/%s in cluster %s, managed by podidentity-operator", m.Noun(), b.Namespace, b.Spec.ServiceAccountName, cfg.ClusterName)
	}
	if b.Spec.MaxSessionDuration != nil {
		d.MaxSessionDuration = *b.Spec.MaxSessionDuration
	}
	if doc, ok := policy.PermissionPolicy(b.Spec.Permissions); ok {
		d.Permissions = &doc
	}
	d.ManagedPolicies = append([]string(nil), b.Spec.ManagedPolicyArns...)
	sort.Strings(d.ManagedPolicies)
	for k, v := range b.Spec.Tags {
		// Reserved keys are never written from a spec (admission and the
		// guard reject them too): only ownership tags with this cluster's values.
		if !IsReservedTag(k) {
			d.Tags[k] = v
		}
	}
	for k, v := range OwnershipTags(cfg, b.Namespace, b.Name) {
		d.Tags[k] = v
	}
	return d
}

// CurrentBinding is the binding as the observed role currently implements
// it: its spec's permissions, managed policies and session duration are read
// from the role, the rest from b.
func CurrentBinding(b *v1alpha1.PodIdentityBinding, o *Observed) *v1alpha1.PodIdentityBinding {
	cur := b.DeepCopy()
	if b.Status.ServiceAccountName != "" {
		cur.Spec.ServiceAccountName = b.Status.ServiceAccountName
	}
	cur.Spec.Permissions = nil
	if kept, ok := o.Inline.Get(InlinePolicyName); ok {
		doc, _ := kept.Document() // parses: InlineOf wrote it
		for _, st := range doc.Statement {
			ps := v1alpha1.PermissionStatement{
				Sid: st.Sid, Effect: v1alpha1.Effect(st.Effect),
				Actions: append([]string(nil), st.Action...), Resources: append([]string(nil), st.Resource...),
			}
			if len(st.Condition) > 0 {
				ps.Conditions = map[string]map[string][]string{}
				for op, keys := range st.Condition {
					ps.Conditions[op] = map[string][]string{}
					for k, v := range keys {
						ps.Conditions[op][k] = append([]string(nil), v...)
					}
				}
			}
			cur.Spec.Permissions = append(cur.Spec.Permissions, ps)
		}
	}
	cur.Spec.ManagedPolicyArns = append([]string(nil), o.ManagedPolicies...)
	session := o.MaxSessionDuration
	cur.Spec.MaxSessionDuration = &session
	return cur
}

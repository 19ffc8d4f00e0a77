// Package identity is the seam between a binding and the mechanism through
// which the pods of its ServiceAccount obtain its role's credentials: IRSA
// (a federated OIDC trust and the ServiceAccount's role annotation) or EKS
// Pod Identity (a trust for EKS's service principal, exact through session
// tags, and a pod identity association). What a mechanism decides and can
// decide without I/O is here: the trust policy that lets exactly one
// ServiceAccount of one cluster assume the role, a trust that lets nobody
// assume it, and whether a pod can obtain the role's credentials. The
// planner and the pods controller ask the binding's mechanism; adding one
// is a new implementation here and a case in role.Config.Mechanism.
package identity

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/podidentity/podidentity-operator/internal/podwebhook"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

// Kind names a mechanism as the API does.
type Kind string

// The mechanisms.
const (
	KindIRSA           Kind = "IRSA"
	KindEKSPodIdentity Kind = "EKSPodIdentity"
)

// Subject is the one ServiceAccount that may use a role.
type Subject struct {
	Namespace, ServiceAccount string
	// Audience of its tokens (IRSA; Pod Identity's is fixed).
	Audience string
}

// Mechanism is what differs between the ways pods obtain a role.
type Mechanism interface {
	Kind() Kind
	// Trust lets exactly the subject, of this cluster, assume the role.
	Trust(Subject) policy.Document
	// Parked lets nobody assume the role (the mechanism's principal, denied).
	Parked() policy.Document
	// PodCurrent reports whether the pod can obtain credentials of roleARN.
	PodCurrent(p *corev1.Pod, roleARN string) bool
	// Noun is how role descriptions name the mechanism ("IRSA role").
	Noun() string
	// Binds says how the ServiceAccount's pods obtain the role, for the
	// ServiceAccountSynced condition.
	Binds(serviceAccount string) string
}

// IRSA: a web identity token of the ServiceAccount, exchanged with
// sts:AssumeRoleWithWebIdentity; the role is trusted for the cluster's OIDC
// provider and any additional ones.
type IRSA struct {
	Provider   policy.Provider
	Additional []policy.Provider
}

// Kind is KindIRSA.
func (IRSA) Kind() Kind { return KindIRSA }

// Noun names IRSA roles.
func (IRSA) Noun() string { return "IRSA role" }

// Binds: the role-arn annotation.
func (IRSA) Binds(sa string) string {
	return "ServiceAccount " + sa + " is annotated with the role ARN"
}

// Trust is one Allow statement per provider, exact on sub and aud.
func (m IRSA) Trust(s Subject) policy.Document {
	return policy.TrustPolicy(policy.TrustInput{ProviderARN: m.Provider.ARN, Issuer: m.Provider.ID,
		Namespace: s.Namespace, ServiceAccount: s.ServiceAccount, Audience: s.Audience, Additional: m.Additional})
}

// Parked denies the cluster's provider.
func (m IRSA) Parked() policy.Document {
	return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
		Effect:    "Deny",
		Principal: policy.Principal{"Federated": {m.Provider.ARN}},
		Action:    policy.StringList{policy.AssumeRoleWithWebIdentity},
	}}}
}

// PodCurrent: the pod was injected with the projected token and this role.
func (IRSA) PodCurrent(p *corev1.Pod, roleARN string) bool { return podwebhook.Current(p, roleARN) }

// PodIdentityService is the service principal EKS Pod Identity assumes
// roles as.
const PodIdentityService = "pods.eks.amazonaws.com"

// The session tags EKS Pod Identity passes (unless an association disables
// them) that the trust conditions on.
const (
	TagClusterARN     = "eks-cluster-arn"
	TagNamespace      = "kubernetes-namespace"
	TagServiceAccount = "kubernetes-service-account"
)

// Variables EKS's pod identity webhook injects into a pod's containers.
const (
	EnvCredentialsURI = podwebhook.EnvCredentialsFullURI
	VolumeToken       = podwebhook.PodIdentityVolumeName
)

// PodIdentity: EKS's agent exchanges the pod's token with
// eks-auth:AssumeRoleForPodIdentity for the association's role, and EKS
// assumes it as pods.eks.amazonaws.com with session tags naming the
// cluster, namespace and ServiceAccount.
type PodIdentity struct {
	// Account owns the cluster; ClusterARN is the cluster's.
	Account, ClusterARN string
}

// Kind is KindEKSPodIdentity.
func (PodIdentity) Kind() Kind { return KindEKSPodIdentity }

// Noun names Pod Identity roles.
func (PodIdentity) Noun() string { return "EKS Pod Identity role" }

// Binds: an association (its ID in status.associationId).
func (PodIdentity) Binds(sa string) string {
	return "an EKS pod identity association (status.associationId) maps ServiceAccount " + sa + " to the role"
}

// Trust allows sts:AssumeRole and sts:TagSession for EKS's service
// principal only from the cluster's account and only with the session tags
// of this cluster, namespace and ServiceAccount: a plain service-principal
// trust would let any association in the account use the role.
func (m PodIdentity) Trust(s Subject) policy.Document {
	return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
		Effect:    "Allow",
		Principal: policy.Principal{"Service": {PodIdentityService}},
		Action:    policy.StringList{"sts:AssumeRole", "sts:TagSession"},
		Condition: policy.Condition{"StringEquals": {
			"aws:SourceAccount":                   {m.Account},
			"aws:RequestTag/" + TagClusterARN:     {m.ClusterARN},
			"aws:RequestTag/" + TagNamespace:      {s.Namespace},
			"aws:RequestTag/" + TagServiceAccount: {s.ServiceAccount},
		}},
	}}}
}

// Parked denies EKS's service principal.
func (PodIdentity) Parked() policy.Document {
	return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
		Effect:    "Deny",
		Principal: policy.Principal{"Service": {PodIdentityService}},
		Action:    policy.StringList{"sts:AssumeRole", "sts:TagSession"},
	}}}
}

// PodCurrent: EKS injected the credentials endpoint when the pod was
// created (it does so only if an association existed then). The role is
// looked up at each exchange, so a later role change needs no restart.
func (PodIdentity) PodCurrent(p *corev1.Pod, _ string) bool {
	if !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == VolumeToken }) {
		return false
	}
	for _, c := range p.Spec.Containers {
		if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == EnvCredentialsURI }) {
			return true
		}
	}
	return false
}

// Cross-account EKS Pod Identity: EKS assumes the association's role (the
// hop role, in the cluster's account, with PodIdentity's exact trust), and
// with its credentials the association's target role in another account,
// passing the association's external ID. The target role trusts only the
// hop role with that external ID; the hop role may only assume the target.

// TargetTrust lets only the hop role, with the association's external ID,
// assume the target role. With no external ID yet (the association is not
// created), nobody may: a Deny of the hop role.
func TargetTrust(hopARN, externalID string) policy.Document {
	actions := policy.StringList{"sts:AssumeRole", "sts:TagSession"}
	if externalID == "" {
		return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
			Effect: "Deny", Principal: policy.Principal{"AWS": {hopARN}}, Action: actions,
		}}}
	}
	return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
		Effect:    "Allow",
		Principal: policy.Principal{"AWS": {hopARN}},
		Action:    actions,
		Condition: policy.Condition{"StringEquals": {"sts:ExternalId": {externalID}}},
	}}}
}

// HopPermissions lets the hop role assume the target role, nothing else.
func HopPermissions(targetARN string) policy.Document {
	return policy.Document{Version: policy.Version, Statement: []policy.Statement{{
		Effect:   "Allow",
		Action:   policy.StringList{"sts:AssumeRole", "sts:TagSession"},
		Resource: policy.StringList{targetARN},
	}}}
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodIdentityAccountSpec says which AWS account holds the roles of the
// bindings in the namespaces it selects, and how the operator acts there.
// Namespaces no account selects keep their roles in the operator's own
// account; a namespace two accounts select gets no roles anywhere new
// (AccountConflict). Tenants never choose: nothing in a binding names an
// account.
// +kubebuilder:validation:XValidation:rule=`self.roleArn.split(':')[4] == self.accountId`,message="roleArn must be a role of accountId"
type PodIdentityAccountSpec struct {
	// AccountID is the AWS account the roles are created in.
	// +kubebuilder:validation:Pattern=`^[0-9]{12}$`
	// +required
	AccountID string `json:"accountId"`

	// RoleARN is the IAM role in that account the operator assumes (with
	// sts:AssumeRole) to manage the roles there. config/iam ships its
	// permission policy and its trust, which trusts only the operator's own
	// role, with the external ID.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$')`,message="roleArn must be an IAM role ARN, for example arn:aws:iam::111122223333:role/podidentity-operator"
	// +required
	RoleARN string `json:"roleArn"`

	// ExternalID is passed to sts:AssumeRole (the role's trust should
	// require it: sts:ExternalId).
	// +kubebuilder:validation:MaxLength=1224
	// +optional
	ExternalID string `json:"externalId,omitempty"`

	// SessionName is the role session name (default podidentity-operator).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[\w+=,.@-]*$`
	// +optional
	SessionName string `json:"sessionName,omitempty"`

	// NamespaceSelector selects the namespaces whose bindings' roles live
	// in this account. An empty selector selects every namespace.
	// +optional
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// RolePath is the path of the roles created in this account (default:
	// the operator's --role-path).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^/([\w+=,.@-]+/)*$')`,message="rolePath must start and end with /, for example /podidentity/"
	// +optional
	RolePath string `json:"rolePath,omitempty"`

	// RoleNamePrefix prefixes the generated role names in this account
	// (default: the operator's --role-name-prefix).
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[\w+=,.@-]*$`
	// +optional
	RoleNamePrefix string `json:"roleNamePrefix,omitempty"`

	// PermissionsBoundaryARN is set on every role created in this account
	// (default: none; the operator's --permissions-boundary-arn names a
	// policy of its own account, which roles here cannot use).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]+$')`,message="permissionsBoundaryArn must be an IAM policy ARN"
	// +optional
	PermissionsBoundaryARN string `json:"permissionsBoundaryArn,omitempty"`

	// AdditionalOIDCIssuers are other service-account token issuers (a
	// cluster being migrated from, say) whose OIDC providers, registered in
	// this account, every role here trusts too, as --additional-oidc-issuers
	// does in the operator's own account. Not inherited from that flag:
	// trust in another account is granted there explicitly.
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^https://[^\s]+$`
	// +listType=set
	// +optional
	AdditionalOIDCIssuers []string `json:"additionalOidcIssuers,omitempty"`

	// IAMRateLimits bound the operator's IAM calls in this account (each
	// account has its own limiters; a field left out takes the operator's
	// --iam-* flag).
	// +optional
	IAMRateLimits *IAMRateLimits `json:"iamRateLimits,omitempty"`
}

// IAMRateLimits are client-side rates of IAM calls in one account, SDK
// retries included.
type IAMRateLimits struct {
	// ReadQPS bounds Get* and List* calls per second.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	ReadQPS int32 `json:"readQPS,omitempty"`
	// ReadBurst is the burst of read calls above ReadQPS.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	ReadBurst int32 `json:"readBurst,omitempty"`
	// WriteQPS bounds every other call per second.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	WriteQPS int32 `json:"writeQPS,omitempty"`
	// WriteBurst is the burst of write calls above WriteQPS.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	WriteBurst int32 `json:"writeBurst,omitempty"`
}

// PodIdentityAccountStatus reports whether the operator can act in the
// account and what it serves.
type PodIdentityAccountStatus struct {
	// Namespaces is the number of namespaces the account serves (selected
	// by it and by no other account).
	// +optional
	Namespaces int32 `json:"namespaces"`
	// ConflictingNamespaces lists up to 20 namespaces another account
	// selects too: their bindings get no new role (AccountConflict).
	// +optional
	ConflictingNamespaces []string `json:"conflictingNamespaces,omitempty"`
	// Conditions: Ready (the operator assumed the role and it is in
	// accountId).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Reasons of a PodIdentityAccount's Ready condition.
const (
	// ReasonAssumed: the operator assumed the role and it is in accountId.
	ReasonAssumed = "Assumed"
	// ReasonAssumeRoleFailed: sts:AssumeRole was refused or failed.
	ReasonAssumeRoleFailed = "AssumeRoleFailed"
	// ReasonAccountMismatch: the assumed role is in another account.
	ReasonAccountMismatch = "AccountMismatch"
	// ReasonInvalidSpec (shared with bindings) also reports a
	// PodIdentityAccount whose spec cannot be used as written (an
	// additional issuer that is the cluster's own, say).
)

// PodIdentityAccount maps namespaces to the AWS account that holds their
// bindings' roles. Cluster-scoped: only cluster admins create it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pia,categories=podidentity
// +kubebuilder:metadata:annotations="argocd.argoproj.io/sync-options=Prune=false,Delete=false"
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.accountId`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Namespaces",type=integer,JSONPath=`.status.namespaces`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PodIdentityAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the account and how the operator acts there.
	// +required
	Spec PodIdentityAccountSpec `json:"spec"`
	// Status is written by the operator.
	// +optional
	Status PodIdentityAccountStatus `json:"status,omitempty"`
}

// PodIdentityAccountList is a list of PodIdentityAccounts.
// +kubebuilder:object:root=true
type PodIdentityAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodIdentityAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PodIdentityAccount{}, &PodIdentityAccountList{})
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Effect of a permission statement.
// +kubebuilder:validation:Enum=Allow;Deny
type Effect string

const (
	EffectAllow Effect = "Allow"
	EffectDeny  Effect = "Deny"
)

// DeletionPolicy says what happens to the IAM role when the binding is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the role, its inline policies and attachments.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRetain leaves the role in IAM with its permissions and
	// trust, tagged podidentity.io/retained=true (a Retain record the
	// operator no longer manages).
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// PodRestartPolicy says whether the operator restarts workloads whose pods
// run without the binding's current credentials.
// +kubebuilder:validation:Enum=Never;Rollout
type PodRestartPolicy string

const (
	// PodRestartPolicyNever only reports stale pods (status.pods, PodsCurrent).
	PodRestartPolicyNever PodRestartPolicy = "Never"
	// PodRestartPolicyRollout restarts the Deployments, StatefulSets and
	// DaemonSets that own stale pods, once per role change, as
	// `kubectl rollout restart` does. Bare pods are never touched.
	PodRestartPolicyRollout PodRestartPolicy = "Rollout"
)

// Identity is how the pods of a binding's ServiceAccount obtain its role's
// credentials.
// +kubebuilder:validation:Enum=IRSA;EKSPodIdentity
type Identity string

const (
	// IdentityIRSA: the ServiceAccount is annotated with the role ARN; a
	// pod identity webhook projects a token that the SDK exchanges with
	// sts:AssumeRoleWithWebIdentity. The role trusts the cluster's OIDC
	// provider for exactly this ServiceAccount.
	IdentityIRSA Identity = "IRSA"
	// IdentityEKSPodIdentity: an EKS pod identity association maps the
	// ServiceAccount to the role; EKS assumes it as pods.eks.amazonaws.com
	// with session tags. The role trusts that principal only with this
	// cluster's, namespace's and ServiceAccount's session tags.
	IdentityEKSPodIdentity Identity = "EKSPodIdentity"
)

// PermissionStatement is one statement of the role's inline permission policy.
type PermissionStatement struct {
	// Sid is an optional statement identifier, unique within the binding.
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[A-Za-z0-9]+$')`,message="sid may contain only letters and digits, as IAM statement IDs"
	// +optional
	Sid string `json:"sid,omitempty"`

	// Effect of the statement: Allow (the default) or Deny.
	// +kubebuilder:default=Allow
	// +optional
	Effect Effect `json:"effect,omitempty"`

	// Actions the statement applies to, as "service:Action" (for example
	// "dynamodb:GetItem"); "*" and "?" wildcards are allowed in the action part.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^(\*|[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+)$`
	// +listType=atomic
	Actions []string `json:"actions"`

	// Resources the statement applies to: ARNs (wildcards allowed) or "*".
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:items:Pattern=`^(\*|arn:[^:]+:[^:]*:[^:]*:[^:]*:.+)$`
	// +listType=atomic
	Resources []string `json:"resources"`

	// Conditions is an IAM condition block: operator -> condition key -> values,
	// for example {"StringLike": {"s3:prefix": ["home/*"]}}.
	// +optional
	Conditions map[string]map[string][]string `json:"conditions,omitempty"`
}

// ServiceAccountTokenSettings are written as the pod identity webhook's
// annotations on the ServiceAccount.
type ServiceAccountTokenSettings struct {
	// Audience of the projected token (annotation eks.amazonaws.com/audience).
	// The role's trust policy requires exactly this audience. Defaults to
	// sts.amazonaws.com.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[^\s"]+$')`,message="audience must not contain spaces or quotes"
	// +optional
	Audience string `json:"audience,omitempty"`

	// STSRegionalEndpoints makes the SDK use the regional STS endpoint
	// (annotation eks.amazonaws.com/sts-regional-endpoints).
	// +optional
	STSRegionalEndpoints *bool `json:"stsRegionalEndpoints,omitempty"`

	// ExpirationSeconds is the lifetime of the projected token
	// (annotation eks.amazonaws.com/token-expiration).
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=86400
	// +optional
	ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`
}

// PodIdentityBindingSpec declares a ServiceAccount in the binding's namespace
// and the AWS permissions its pods receive through an IAM role.
// +kubebuilder:validation:XValidation:rule="!has(self.tags) || self.tags.all(k, !k.lowerAscii().startsWith('podidentity.io/'))",message="tag keys with the prefix podidentity.io/ (in any case: IAM tag keys are case-insensitive) are reserved for ownership tags"
type PodIdentityBindingSpec struct {
	// ServiceAccountName is the ServiceAccount in this namespace that receives
	// the role. It is created if it does not exist; an existing one only gets
	// the eks.amazonaws.com/role-arn annotation (and the token annotations).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message="serviceAccountName must be a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	ServiceAccountName string `json:"serviceAccountName"`

	// Permissions are rendered as the role's inline permission policy.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	Permissions []PermissionStatement `json:"permissions,omitempty"`

	// ManagedPolicyArns are IAM managed policies attached to the role.
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`self.all(a, a.matches(r'^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]+$'))`,message="each managed policy is an IAM policy ARN, for example arn:aws:iam::aws:policy/ReadOnlyAccess or arn:aws:iam::111122223333:policy/team/reader"
	// +listType=set
	// +optional
	ManagedPolicyArns []string `json:"managedPolicyArns,omitempty"`

	// RoleName overrides the generated IAM role name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[\w+=,.@-]+$')`,message="roleName may contain only letters, digits and + = , . @ _ - (IAM role name characters)"
	// +optional
	RoleName string `json:"roleName,omitempty"`

	// MaxSessionDuration of the role in seconds (3600 to 43200). IAM's
	// default of 3600 applies when unset.
	// +kubebuilder:validation:Minimum=3600
	// +kubebuilder:validation:Maximum=43200
	// +optional
	MaxSessionDuration *int32 `json:"maxSessionDuration,omitempty"`

	// Description of the IAM role.
	// +kubebuilder:validation:MaxLength=1000
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{007E}\x{00A1}-\x{00FF}]*$')`,message="description may contain only printable Latin-1 characters, tabs and line breaks (IAM rejects others)"
	// +optional
	Description string `json:"description,omitempty"`

	// Tags added to the IAM role, besides the operator's ownership tags.
	// +kubebuilder:validation:MaxProperties=45
	// +optional
	Tags map[string]string `json:"tags,omitempty"`

	// ServiceAccountToken settings for the projected token.
	// +optional
	ServiceAccountToken *ServiceAccountTokenSettings `json:"serviceAccountToken,omitempty"`

	// DeletionPolicy says what happens to the IAM role when the binding is
	// deleted: Delete (the default) removes it, Retain leaves it in IAM.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// PodRestartPolicy: Never (the default) reports pods that run without
	// the current credentials; Rollout also restarts the workloads that own
	// them (needs the operator's --enable-pod-restarts; a guardrail can
	// forbid it).
	// +kubebuilder:default=Never
	// +optional
	PodRestartPolicy PodRestartPolicy `json:"podRestartPolicy,omitempty"`

	// Identity is how the ServiceAccount's pods obtain the role: IRSA or
	// EKSPodIdentity (needs the operator's --eks-cluster-name). Unset: the
	// operator's --default-identity (IRSA unless set otherwise).
	// +optional
	Identity Identity `json:"identity,omitempty"`
}

// PodCounts counts the running pods of the binding's ServiceAccount.
type PodCounts struct {
	// Current pods carry the projected token and the current role ARN.
	Current int32 `json:"current"`
	// Stale pods do not: they started before the ServiceAccount was
	// annotated or before the role changed, or a webhook missed them.
	Stale int32 `json:"stale"`
}

// Condition types.
const (
	// ConditionReady is True when the role, its trust and permission policies
	// and the ServiceAccount annotation all match the current generation.
	ConditionReady = "Ready"
	// ConditionRoleSynced is True when the IAM role matches the spec.
	ConditionRoleSynced = "RoleSynced"
	// ConditionServiceAccountSynced is True when the ServiceAccount carries the
	// role annotation.
	ConditionServiceAccountSynced = "ServiceAccountSynced"
	// ConditionPodsCurrent is True when every running pod of the
	// ServiceAccount carries the current role's credentials.
	ConditionPodsCurrent = "PodsCurrent"
)

// Condition reasons. Each names something a user can act on.
const (
	ReasonAvailable              = "Available"
	ReasonSynced                 = "Synced"
	ReasonReconciling            = "Reconciling"
	ReasonInvalidSpec            = "InvalidSpec"
	ReasonRoleConflict           = "RoleConflict"
	ReasonServiceAccountConflict = "ServiceAccountConflict"
	ReasonIAMRequestRejected     = "IAMRequestRejected"
	ReasonIAMUnavailable         = "IAMUnavailable"
	ReasonServiceAccountError    = "ServiceAccountError"
	ReasonWaitingForRole         = "WaitingForRole"
	ReasonDeleting               = "Deleting"
	ReasonDeleteFailed           = "DeleteFailed"
	ReasonGuardrailViolation     = "GuardrailViolation"
	// ReasonOIDCProviderMissing: the role is applied, but IAM has no OIDC
	// identity provider for the cluster's issuer, so no token can assume it.
	ReasonOIDCProviderMissing = "OIDCProviderMissing"
	// ReasonAudienceNotRegistered: the provider exists but does not list the
	// binding's token audience as a client ID.
	ReasonAudienceNotRegistered = "AudienceNotRegistered"
	// ReasonPodsCurrent (PodsCurrent=True): every running pod has the
	// current credentials, or there are no running pods.
	ReasonPodsCurrent = "AllPodsCurrent"
	// ReasonStalePods (PodsCurrent=False): some running pods lack the
	// current credentials; the message names up to five.
	ReasonStalePods = "StalePods"
	// ReasonAssociationConflict: an EKS pod identity association for the
	// ServiceAccount exists that this binding does not own; it is never
	// overwritten.
	ReasonAssociationConflict = "AssociationConflict"
	// ReasonAssociationPending: (EKSPodIdentity in another account than the
	// cluster's) the association was just created or replaced; the target
	// role trusts it once EKS has returned its external ID (moments later).
	ReasonAssociationPending = "AssociationPending"
	// ReasonEKSUnavailable: an EKS pod identity association call failed
	// (outage, throttling, network); retried with back-off.
	ReasonEKSUnavailable = "EKSUnavailable"
	// ReasonEKSRequestRejected: EKS refused an association call (often
	// the operator's permissions: config/iam/operator-policy-pod-identity.json).
	ReasonEKSRequestRejected = "EKSRequestRejected"
	// ReasonAccountConflict: two PodIdentityAccounts select the binding's
	// namespace; the binding gets no new role until one is changed.
	ReasonAccountConflict = "AccountConflict"
	// ReasonAccountUnavailable: the operator cannot act in the AWS account
	// that holds (or will hold) the binding's roles: its PodIdentityAccount
	// is gone, not Ready, or its role cannot be assumed.
	ReasonAccountUnavailable = "AccountUnavailable"
)

// RoleReference names an IAM role and its unique ID.
type RoleReference struct {
	// Name of the role.
	Name string `json:"name"`
	// Account is the AWS account of the role; empty for the operator's own
	// account.
	// +kubebuilder:default=""
	// +optional
	Account string `json:"account"`
	// ID is IAM's unique ID of the role.
	// +optional
	ID string `json:"id,omitempty"`
}

// PodIdentityBindingStatus is the observed state of a PodIdentityBinding.
type PodIdentityBindingStatus struct {
	// RoleArn is the ARN of the IAM role; the ServiceAccount is annotated with it.
	// +optional
	RoleArn string `json:"roleArn,omitempty"`
	// RoleName is the name of the IAM role the operator manages for this binding.
	// +optional
	RoleName string `json:"roleName,omitempty"`
	// RoleID is IAM's unique ID of that role. With the ownership tags it
	// proves the role is this binding's, even if the tags were removed.
	// +optional
	RoleID string `json:"roleId,omitempty"`
	// OwnedRoles lists every IAM role this binding created or adopted and
	// has not deleted yet, with its unique ID: the current role, a role
	// left by a rename, a role whose creation failed halfway. Each is
	// recorded as soon as it exists in IAM, so none is forgotten.
	// +listType=map
	// +listMapKey=name
	// +listMapKey=account
	// +optional
	OwnedRoles []RoleReference `json:"ownedRoles,omitempty"`
	// Account is the AWS account of roleName and roleArn when it is not the
	// operator's own: the one a PodIdentityAccount maps the namespace to.
	// +optional
	Account string `json:"account,omitempty"`
	// ServiceAccountName is the ServiceAccount that currently carries the
	// operator's annotation.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// Pods counts the running pods of ServiceAccountName by whether they
	// carry the current role's credentials.
	// +optional
	Pods *PodCounts `json:"pods,omitempty"`
	// Identity is the mechanism in effect (IRSA or EKSPodIdentity).
	// +optional
	Identity Identity `json:"identity,omitempty"`
	// AssociationID is the EKS pod identity association of the
	// ServiceAccount (EKSPodIdentity).
	// +optional
	AssociationID string `json:"associationId,omitempty"`
	// ObservedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, RoleSynced, ServiceAccountSynced and PodsCurrent.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PodIdentityBinding gives the pods of one ServiceAccount in its namespace an
// IAM role (IRSA): the operator creates the role, trusts the cluster's OIDC
// provider for exactly that ServiceAccount, grants the declared permissions
// and annotates the ServiceAccount with the role ARN.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pib,categories=podidentity
// +kubebuilder:metadata:annotations="argocd.argoproj.io/sync-options=Prune=false,Delete=false"
// +kubebuilder:printcolumn:name="Service Account",type=string,JSONPath=`.spec.serviceAccountName`
// +kubebuilder:printcolumn:name="Role ARN",type=string,JSONPath=`.status.roleArn`
// +kubebuilder:printcolumn:name="Identity",type=string,JSONPath=`.status.identity`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type PodIdentityBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +required
	Spec PodIdentityBindingSpec `json:"spec"`
	// Status is the observed state, written by the operator only.
	// +optional
	Status PodIdentityBindingStatus `json:"status,omitempty"`
}

// PodIdentityBindingList is a list of PodIdentityBindings.
// +kubebuilder:object:root=true
type PodIdentityBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodIdentityBinding `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PodIdentityBinding{}, &PodIdentityBindingList{})
}

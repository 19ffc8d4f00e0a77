package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodIdentityGuardrailSpec constrains the PodIdentityBindings of the
// namespaces it selects. Every guardrail that selects a namespace applies; a
// deny always wins over an allow.
type PodIdentityGuardrailSpec struct {
	// NamespaceSelector selects the namespaces whose bindings this guardrail
	// constrains. An empty selector selects every namespace.
	// +optional
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// AllowedActions, when set, is the only set of actions an Allow statement
	// may grant: every real action a binding's pattern matches must match one
	// of these patterns ("service:Action", wildcards allowed).
	// +kubebuilder:validation:MaxItems=500
	// +listType=set
	// +optional
	AllowedActions []string `json:"allowedActions,omitempty"`

	// DeniedActions may not be granted by an Allow statement: a binding whose
	// pattern matches any real action that one of these patterns matches
	// violates the guardrail.
	// +kubebuilder:validation:MaxItems=500
	// +listType=set
	// +optional
	DeniedActions []string `json:"deniedActions,omitempty"`

	// AllowedResources, when set, is the only set of resources an Allow
	// statement may name: each resource must be covered by one of these ARN
	// patterns (* and ? wildcards).
	// +kubebuilder:validation:MaxItems=500
	// +listType=set
	// +optional
	AllowedResources []string `json:"allowedResources,omitempty"`

	// AllowedManagedPolicyArns, when set, is the only set of managed policies a
	// binding may attach (ARN patterns, wildcards allowed). To forbid managed
	// policies, set a pattern no ARN matches, such as "none".
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	AllowedManagedPolicyArns []string `json:"allowedManagedPolicyArns,omitempty"`

	// RequiredPermissionsBoundary is set as the permissions boundary of every
	// selected binding's role.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]+$')`,message="requiredPermissionsBoundary must be an IAM policy ARN, for example arn:aws:iam::111122223333:policy/team-boundary"
	// +optional
	RequiredPermissionsBoundary string `json:"requiredPermissionsBoundary,omitempty"`

	// MaxSessionDuration caps spec.maxSessionDuration of selected bindings (seconds).
	// +kubebuilder:validation:Minimum=3600
	// +kubebuilder:validation:Maximum=43200
	// +optional
	MaxSessionDuration *int32 `json:"maxSessionDuration,omitempty"`

	// ForbidRetain forbids deletionPolicy Retain in selected namespaces: a
	// retained role keeps trusting its ServiceAccount outside every
	// guardrail. A binding that sets it is a violation, and its roles are
	// deleted, not retained, when it is deleted.
	// +optional
	ForbidRetain bool `json:"forbidRetain,omitempty"`

	// ForbidPodRestarts forbids podRestartPolicy Rollout in selected
	// namespaces: the operator never restarts their workloads. A binding
	// that sets it is a violation.
	// +optional
	ForbidPodRestarts bool `json:"forbidPodRestarts,omitempty"`

	// AllowedIdentities restricts the identity mechanisms bindings in
	// selected namespaces may use (IRSA, EKSPodIdentity; empty: both). A
	// binding asking for another is a violation: a new one gets nothing, an
	// existing one keeps an allowed mechanism.
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	// +optional
	AllowedIdentities []Identity `json:"allowedIdentities,omitempty"`

	// AllowedAssumableRoles lifts the built-in denial of sts:AssumeRole,
	// sts:AssumeRoleWithWebIdentity, sts:AssumeRoleWithSAML and
	// sts:AssumeRoot for selected namespaces: a statement granting them is
	// allowed when every resource it names is covered by one of these role
	// ARN patterns ("*" and "?" wildcards). Without it, no binding may grant
	// any role assumption: any role that trusts its account could be reached.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=2048
	// +listType=set
	// +optional
	AllowedAssumableRoles []string `json:"allowedAssumableRoles,omitempty"`

	// AllowedRunAsActions lifts the built-in denial of actions that run code
	// with another principal's permissions (lambda:UpdateFunctionCode,
	// ssm:SendCommand, ssm:StartSession, ecs:RunTask, codebuild:StartBuild,
	// ...) for selected namespaces: action patterns, matched
	// case-insensitively against the real actions a binding grants.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	// +optional
	AllowedRunAsActions []string `json:"allowedRunAsActions,omitempty"`

	// RoleNamePattern restricts spec.roleName overrides in selected
	// namespaces to names matching this pattern ("*" and "?" wildcards), for
	// example "team-a-*". Bindings without spec.roleName (generated names)
	// always pass. A binding whose override does not match keeps its current
	// role and gets no new one.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[\w+=,.@*?-]+$')`,message="roleNamePattern may contain only IAM role name characters and the wildcards * and ?"
	// +optional
	RoleNamePattern string `json:"roleNamePattern,omitempty"`
}

// PodIdentityGuardrailStatus reports what the guardrail applies to.
type PodIdentityGuardrailStatus struct {
	// SelectedBindings is the number of bindings in the selected namespaces.
	// +optional
	SelectedBindings int32 `json:"selectedBindings"`
	// ViolatingBindings is the number of those that violate this guardrail.
	// +optional
	ViolatingBindings int32 `json:"violatingBindings"`
	// Violations lists up to 20 violating bindings as namespace/name: reason.
	// +optional
	Violations []string `json:"violations,omitempty"`
	// ObservedGeneration is the generation these counts were computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// PodIdentityGuardrail is a cluster-wide policy that admins use to constrain
// what PodIdentityBindings in selected namespaces may grant.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pig,categories=podidentity
// +kubebuilder:metadata:annotations="argocd.argoproj.io/sync-options=Prune=false,Delete=false"
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.selectedBindings`
// +kubebuilder:printcolumn:name="Violating",type=integer,JSONPath=`.status.violatingBindings`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PodIdentityGuardrail struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the policy.
	// +required
	Spec PodIdentityGuardrailSpec `json:"spec"`
	// Status is written by the operator.
	// +optional
	Status PodIdentityGuardrailStatus `json:"status,omitempty"`
}

// PodIdentityGuardrailList is a list of PodIdentityGuardrails.
// +kubebuilder:object:root=true
type PodIdentityGuardrailList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodIdentityGuardrail `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PodIdentityGuardrail{}, &PodIdentityGuardrailList{})
}

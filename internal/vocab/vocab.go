// Package vocab is the operator's vocabulary: every name a user sees on
// objects, in events and in metric labels, in one place. Condition types
// and reasons are part of the API (api/v1alpha1); everything else the
// operator writes or reads by name is here.
package vocab

// Finalizer keeps a binding until its IAM roles, its EKS pod identity
// association and its ServiceAccount annotations are cleaned up.
const Finalizer = "iam.podidentity.io/finalizer"

// ServiceAccount annotations read by the EKS pod identity webhook (IRSA).
const (
	AnnotationRoleARN              = "eks.amazonaws.com/role-arn"
	AnnotationAudience             = "eks.amazonaws.com/audience"
	AnnotationSTSRegionalEndpoints = "eks.amazonaws.com/sts-regional-endpoints"
	AnnotationTokenExpiration      = "eks.amazonaws.com/token-expiration"
)

// TokenAnnotations are the optional annotations a binding sets besides the
// role ARN.
var TokenAnnotations = []string{AnnotationAudience, AnnotationSTSRegionalEndpoints, AnnotationTokenExpiration}

// OperatorAnnotations are every annotation a binding may set on its
// ServiceAccount.
var OperatorAnnotations = append([]string{AnnotationRoleARN}, TokenAnnotations...)

// Workload annotations of podRestartPolicy Rollout.
const (
	// AnnotationRestartedAt is what `kubectl rollout restart` sets on a pod
	// template; changing it rolls the workload.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// AnnotationRestartedForRole records the role ARN a workload was last
	// restarted for, so it is restarted at most once per role change.
	AnnotationRestartedForRole = "podidentity.io/restarted-for-role"
)

// Labels.
const (
	// LabelManagedBy (ManagedByValue) marks a ServiceAccount the operator
	// created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "podidentity-operator"
	// LabelPodWebhook on a Namespace, set to "disabled", keeps the pod
	// identity webhook away from its pods (the MutatingWebhookConfiguration's
	// namespaceSelector says the same; the handler checks it too).
	LabelPodWebhook = "podidentity.io/pod-identity-webhook"
)

// Field managers of a binding's status: each controller applies its own
// part (one writer per status field).
const (
	// StatusManagerBinding owns everything but status.pods and PodsCurrent.
	StatusManagerBinding = "podidentity-binding-status"
	// StatusManagerPods owns status.pods and the PodsCurrent condition.
	StatusManagerPods = "podidentity-pods-status"
)

// EventReason is the reason of an event the operator records about a
// binding. Condition reasons (api/v1alpha1) are event reasons too when a
// condition turns False.
type EventReason string

// Event reasons.
const (
	EventRoleCreated            EventReason = "RoleCreated"
	EventRoleUpdated            EventReason = "RoleUpdated"
	EventRoleDeleted            EventReason = "RoleDeleted"
	EventRoleRetained           EventReason = "RoleRetained"
	EventDriftCorrected         EventReason = "DriftCorrected"
	EventRoleConflict           EventReason = "RoleConflict"
	EventServiceAccountConflict EventReason = "ServiceAccountConflict"
	EventServiceAccountUpdated  EventReason = "ServiceAccountUpdated"
	EventIAMRequestRejected     EventReason = "IAMRequestRejected"
	EventDeleteFailed           EventReason = "DeleteFailed"
	EventInvalidSpec            EventReason = "InvalidSpec"
	EventGuardrailViolation     EventReason = "GuardrailViolation"
	// EventGuardrailEnforced: permissions removed from a role because a
	// guardrail forbids them; not drift (nobody changed the role).
	EventGuardrailEnforced EventReason = "GuardrailEnforced"
	EventRoleParked        EventReason = "RoleParked"
	// EventCRDDeleted: the binding went with its CRD; its roles were kept.
	EventCRDDeleted EventReason = "CRDDeleted"
	// EventStatusWriteFailed: the API server refused the status patch.
	EventStatusWriteFailed EventReason = "StatusWriteFailed"
	// EKS pod identity associations (spec.identity EKSPodIdentity).
	EventAssociationCreated  EventReason = "AssociationCreated"
	EventAssociationUpdated  EventReason = "AssociationUpdated"
	EventAssociationDeleted  EventReason = "AssociationDeleted"
	EventAssociationRetained EventReason = "AssociationRetained"
	// EventStalePods: pods without the current role's credentials appeared.
	EventStalePods EventReason = "StalePods"
	// EventRolloutRestarted: a workload was restarted for its stale pods.
	EventRolloutRestarted EventReason = "RolloutRestarted"
)

// EventReasons are every event reason of this package (the README lists
// each one).
var EventReasons = []EventReason{EventRoleCreated, EventRoleUpdated, EventRoleDeleted, EventRoleRetained,
	EventDriftCorrected, EventRoleConflict, EventServiceAccountConflict, EventServiceAccountUpdated,
	EventIAMRequestRejected, EventDeleteFailed, EventInvalidSpec, EventGuardrailViolation,
	EventGuardrailEnforced, EventRoleParked, EventCRDDeleted, EventStatusWriteFailed,
	EventAssociationCreated, EventAssociationUpdated, EventAssociationDeleted, EventAssociationRetained,
	EventStalePods, EventRolloutRestarted}

// ChangeKind is a kind of change to a role or an association: what drift
// corrections and guardrail enforcements are counted by (the kind label).
type ChangeKind string

// Change kinds.
const (
	ChangeTrustPolicy         ChangeKind = "TrustPolicy"
	ChangeInlinePolicy        ChangeKind = "InlinePolicy"
	ChangeExtraInlinePolicy   ChangeKind = "ExtraInlinePolicy"
	ChangeManagedPolicies     ChangeKind = "ManagedPolicies"
	ChangePermissionsBoundary ChangeKind = "PermissionsBoundary"
	ChangeMaxSessionDuration  ChangeKind = "MaxSessionDuration"
	ChangeDescription         ChangeKind = "Description"
	ChangeTags                ChangeKind = "Tags"
	// ChangeRoleDeleted: the role was deleted out of band (re-created).
	ChangeRoleDeleted ChangeKind = "RoleDeleted"
	// ChangeAssociation: the association's role or session tags were
	// changed out of band.
	ChangeAssociation ChangeKind = "Association"
	// ChangeAssociationDeleted: the association was deleted out of band.
	ChangeAssociationDeleted ChangeKind = "AssociationDeleted"
)

// ChangeKinds are every change kind, for metrics exported at zero.
var ChangeKinds = []ChangeKind{ChangeTrustPolicy, ChangeInlinePolicy, ChangeExtraInlinePolicy, ChangeManagedPolicies,
	ChangePermissionsBoundary, ChangeMaxSessionDuration, ChangeDescription, ChangeTags, ChangeRoleDeleted,
	ChangeAssociation, ChangeAssociationDeleted}

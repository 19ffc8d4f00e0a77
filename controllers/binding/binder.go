package binding

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/eksassoc"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/role"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// AssociationClient is the EKS pod identity association API of the
// operator's cluster (eksassoc.Client).
type AssociationClient interface {
	Find(ctx context.Context, namespace, serviceAccount string) (*eksassoc.Association, error)
	// Get reads one association by ID (nil: none).
	Get(ctx context.Context, id string) (*eksassoc.Association, error)
	// Create and Converge name a target role too ("" none: Chain).
	Create(ctx context.Context, namespace, serviceAccount, roleARN, targetRoleARN, requestToken string, tags map[string]string) (*eksassoc.Association, error)
	Converge(ctx context.Context, id, roleARN, targetRoleARN string) (*eksassoc.Association, error)
	Delete(ctx context.Context, id string) error
	Tag(ctx context.Context, arn string, tags map[string]string) error
	// IDs lists every association of the cluster: "namespace/sa" -> ID.
	IDs(ctx context.Context) (map[string]string, error)
}

// A binder lets the pods of a ServiceAccount obtain a binding's current
// role the way the binding's identity mechanism does, and lets go of that.
// The ServiceAccount itself (created if missing, released or deleted with
// the binding) is common to both.
type binder interface {
	// bind makes the pods of sa obtain roleARN.
	bind(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa, roleARN string, announce bool) error
	// unbind undoes what bind did for sa, the ServiceAccount aside:
	// released, or kept as a Retain record (mode retain).
	unbind(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa string, mode releaseMode) error
}

// binderFor is the binder of a mechanism; looked is the association gather
// already read (nil: none read); chain, for EKS Pod Identity with a role in
// another account (planner.Chain), names the hop role and receives the
// association's external ID.
func (r *Reconciler) binderFor(kind identity.Kind, looked *lookedUp, chain *chainBind) binder {
	if kind == identity.KindEKSPodIdentity && r.Associations != nil {
		return podIdentityBinder{r: r, looked: looked, chain: chain}
	}
	return irsaBinder{r}
}

// chainBind is a cross-account association: EKS assumes hopARN, then the
// bound role as its target; externalID is what EKS says it passes.
type chainBind struct {
	hopARN     string
	externalID string
}

// lookedUp is a ServiceAccount's association as gather read it (a nil
// association: none).
type lookedUp struct {
	sa string
	a  *eksassoc.Association
}

// release lets go of the ServiceAccounts with every binder that may have
// bound them, then of the ServiceAccounts themselves.
func (r *Reconciler) release(ctx context.Context, b *v1alpha1.PodIdentityBinding, sas []string, mode releaseMode, kinds ...identity.Kind) error {
	for _, k := range kinds {
		for _, sa := range sas {
			if err := r.binderFor(k, nil, nil).unbind(ctx, b, sa, mode); err != nil {
				return err
			}
		}
	}
	return r.releaseServiceAccounts(ctx, b, sas, mode)
}

// irsaBinder annotates the ServiceAccount with the role ARN.
type irsaBinder struct{ r *Reconciler }

func (i irsaBinder) bind(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa, roleARN string, announce bool) error {
	b.Status.AssociationID = ""
	return i.r.syncServiceAccount(ctx, b, sa, roleARN, announce)
}

// unbind: the annotations go with the ServiceAccount's release, or with the
// next mechanism's bind.
func (irsaBinder) unbind(context.Context, *v1alpha1.PodIdentityBinding, string, releaseMode) error {
	return nil
}

// podIdentityBinder keeps the ServiceAccount free of IRSA annotations and
// maps it to the role with an EKS pod identity association that carries
// the binding's ownership tags and has session tags enabled (the role's
// trust requires them). An association it does not own is never touched.
type podIdentityBinder struct {
	r      *Reconciler
	looked *lookedUp
	chain  *chainBind
}

// associationConflict: the ServiceAccount has an association the binding
// does not own.
type associationConflict struct{ sa, id, roleARN string }

func (e associationConflict) Error() string {
	return fmt.Sprintf("ServiceAccount %s already has EKS pod identity association %s (role %s) that this binding does not own; "+
		"the operator will not modify it. Delete it, or point this binding at another ServiceAccount", e.sa, e.id, e.roleARN)
}

// ownsAssociation reports whether the association carries the binding's
// ownership tags and is not a Retain record.
func ownsAssociation(cfg role.Config, a *eksassoc.Association, b *v1alpha1.PodIdentityBinding) bool {
	if v, _ := role.TagValue(a.Tags, role.TagRetained); v != "" {
		return false
	}
	for k, v := range role.OwnershipTags(cfg, b.Namespace, b.Name) {
		if got, _ := role.TagValue(a.Tags, k); got != v {
			return false
		}
	}
	return true
}

func (p podIdentityBinder) bind(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa, roleARN string, announce bool) error {
	r := p.r
	// The ServiceAccount exists and carries no IRSA annotation of this
	// binding (the SDK would prefer a web identity token to Pod Identity).
	if err := r.syncServiceAccount(ctx, b, sa, "", announce); err != nil {
		return err
	}
	a, err := p.lookup(ctx, b, sa)
	if err != nil {
		return eksFailed("reading the EKS pod identity association of "+sa, err)
	}
	log := logf.FromContext(ctx)
	wasSynced := isTrueForGeneration(b, v1alpha1.ConditionServiceAccountSynced) && b.Status.Identity == v1alpha1.IdentityEKSPodIdentity
	// With a chain the association's role is the hop and the bound role its
	// target; otherwise the bound role itself, and no target.
	assocRole, target := roleARN, ""
	if p.chain != nil {
		assocRole, target = p.chain.hopARN, roleARN
	}
	switch {
	case a == nil:
		a, err = r.Associations.Create(ctx, b.Namespace, sa, assocRole, target, "", role.OwnershipTags(r.Config, b.Namespace, b.Name))
		if err != nil {
			return eksFailed("creating the EKS pod identity association of "+sa, err)
		}
		if wasSynced && b.Status.AssociationID != "" {
			driftCorrections.WithLabelValues(string(vocab.ChangeAssociationDeleted), "operator").Inc()
			r.event(b, corev1.EventTypeWarning, vocab.EventDriftCorrected, "EKS pod identity association "+b.Status.AssociationID+
				" was deleted outside the operator; created "+a.ID)
		} else {
			r.event(b, corev1.EventTypeNormal, vocab.EventAssociationCreated, "created EKS pod identity association "+a.ID+" of ServiceAccount "+sa+" for "+describeAssociation(assocRole, target))
		}
		log.Info("created pod identity association", "association", a.ID)
	case !ownsAssociation(r.Config, a, b):
		return associationConflict{sa: sa, id: a.ID, roleARN: a.RoleARN}
	case a.RoleARN != assocRole || a.TargetRoleARN != target || a.SessionTagsDisabled:
		var changes []string
		if a.SessionTagsDisabled {
			changes = append(changes, "session tags re-enabled (the role's trust requires them)")
		}
		if a.RoleARN != assocRole || a.TargetRoleARN != target {
			changes = append(changes, fmt.Sprintf("role %s -> %s", describeAssociation(a.RoleARN, a.TargetRoleARN), describeAssociation(assocRole, target)))
		}
		what := strings.Join(changes, ", ")
		if a, err = r.Associations.Converge(ctx, a.ID, assocRole, target); err != nil {
			return eksFailed("updating EKS pod identity association "+a.ID, err)
		}
		if wasSynced && b.Status.RoleArn == roleARN {
			driftCorrections.WithLabelValues(string(vocab.ChangeAssociation), "operator").Inc()
			r.event(b, corev1.EventTypeWarning, vocab.EventDriftCorrected, "corrected EKS pod identity association "+a.ID+" changed outside the operator: "+what)
		} else {
			r.event(b, corev1.EventTypeNormal, vocab.EventAssociationUpdated, "updated EKS pod identity association "+a.ID+": "+what)
		}
		log.Info("updated pod identity association", "association", a.ID, "change", what)
	}
	b.Status.AssociationID = a.ID
	if p.chain != nil {
		p.chain.externalID = a.ExternalID
	}
	return nil
}

// describeAssociation names an association's role, and its target role.
func describeAssociation(roleARN, target string) string {
	if target == "" {
		return roleARN
	}
	return roleARN + " (target role " + target + ")"
}

// lookup finds the ServiceAccount's association: by the ID status records
// (one Describe, the steady case), else by listing the ServiceAccount's.
func (p podIdentityBinder) lookup(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa string) (*eksassoc.Association, error) {
	if p.looked != nil && p.looked.sa == sa {
		return p.looked.a, nil
	}
	if id := b.Status.AssociationID; id != "" && b.Status.ServiceAccountName == sa {
		a, err := p.r.Associations.Get(ctx, id)
		if err != nil || a != nil && a.Namespace == b.Namespace && a.ServiceAccount == sa {
			return a, err
		}
	}
	return p.r.Associations.Find(ctx, b.Namespace, sa)
}

func (p podIdentityBinder) unbind(ctx context.Context, b *v1alpha1.PodIdentityBinding, sa string, mode releaseMode) error {
	r := p.r
	a, err := p.lookup(ctx, b, sa)
	if err != nil || a == nil || !ownsAssociation(r.Config, a, b) {
		return eksFailed("reading the EKS pod identity association of "+sa, err)
	}
	if a.ID == b.Status.AssociationID {
		b.Status.AssociationID = ""
	}
	if mode == retain {
		if err := r.Associations.Tag(ctx, a.ARN, map[string]string{role.TagRetained: "true"}); err != nil {
			return eksFailed("tagging EKS pod identity association "+a.ID, err)
		}
		r.event(b, corev1.EventTypeNormal, vocab.EventAssociationRetained, "deletionPolicy is Retain: left EKS pod identity association "+a.ID+" in place, tagged "+role.TagRetained)
		return nil
	}
	if err := r.Associations.Delete(ctx, a.ID); err != nil {
		return eksFailed("deleting EKS pod identity association "+a.ID, err)
	}
	r.event(b, corev1.EventTypeNormal, vocab.EventAssociationDeleted, "deleted EKS pod identity association "+a.ID+" of ServiceAccount "+sa)
	logf.FromContext(ctx).Info("deleted pod identity association", "association", a.ID)
	return nil
}

// eksError is a failed EKS call of a binder: reported as EKSUnavailable
// or EKSRequestRejected, not as a Kubernetes error.
type eksError struct {
	op  string
	err error
}

func (e eksError) Error() string { return e.op + ": " + e.err.Error() }
func (e eksError) Unwrap() error { return e.err }

func eksFailed(op string, err error) error {
	if err == nil {
		return nil
	}
	var inUse *ekstypes.ResourceInUseException
	if errors.As(err, &inUse) {
		// Created concurrently since it was looked up: look again.
		err = awsiam.AsRetryable(err)
	}
	return eksError{op: op, err: err}
}

// Package accounts maps namespaces to the AWS account that holds their
// bindings' roles (PodIdentityAccount), and builds, lazily and once per
// account, what the operator needs to act there: credentials from
// sts:AssumeRole (the SDK's cached, auto-refreshing provider), an IAM
// client with its own rate limits, managed policy reads, the OIDC provider
// check and the role configuration. Tenants never choose: the mapping is
// cluster-scoped and read from labels an admin sets on namespaces.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/managedpolicy"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// Home is the key of the operator's own account.
const Home = ""

// Account is everything the operator uses to act in one AWS account.
type Account struct {
	// Key is "" for the operator's own account, else the AWS account ID.
	Key string
	// Name is the PodIdentityAccount ("" for the operator's own account).
	Name string
	// Config shapes every role created here (path, prefix, boundary, the
	// OIDC provider of this account).
	Config role.Config
	Guard  guard.Checker
	IAM    awsiam.API
	// Policies reads managed policies of this account.
	Policies *managedpolicy.Reader
	// Provider is the cluster's OIDC provider in this account.
	Provider *oidcprovider.Watcher
	// Check confirms the operator can act here: its credentials (the
	// assumed role's, cached by the SDK) are in Key's account. Nil for the
	// operator's own account.
	Check func(ctx context.Context) error
	// Roles caches what the operator knows of the roles here, filled by
	// the drift sweep from Snapshot (nil for the operator's own account,
	// whose cache the reconciler holds).
	Roles *role.Cache
	// Snapshot reads every role under the account's role path in a few
	// paginated calls (role.Snapshotter), for the drift sweep.
	Snapshot func(ctx context.Context) (map[string]*role.Observed, error)
	// Stop ends what was started for the account (its provider watch).
	Stop func()
}

// Label is the account's name for metrics, logs and messages.
func (a *Account) Label() string { return Label(a.Key) }

// Label names an account key for metrics, logs and messages: "operator"
// for the operator's own account, else the AWS account ID.
func Label(key string) string {
	if key == Home {
		return "operator"
	}
	return key
}

// ConflictError: more than one PodIdentityAccount selects the namespace.
type ConflictError struct {
	Namespace string
	Accounts  []string
}

func (e ConflictError) Error() string {
	return fmt.Sprintf("namespace %s is selected by more than one PodIdentityAccount (%s); the operator creates no role for its bindings until exactly one selects it",
		e.Namespace, strings.Join(e.Accounts, ", "))
}

// ErrAccountMismatch: the assumed role is in another account than the
// PodIdentityAccount names.
var ErrAccountMismatch = errors.New("the assumed role is in another account")

// UnavailableError: the operator cannot act in the account.
type UnavailableError struct {
	Account string
	Reason  string
	Err     error
}

func (e UnavailableError) Error() string {
	return "AWS account " + e.Account + ": " + e.Reason
}

func (e UnavailableError) Unwrap() error { return e.Err }

// Builder makes an Account for a PodIdentityAccount (the wiring supplies
// it: credentials, clients, limits).
type Builder func(ctx context.Context, pia *v1alpha1.PodIdentityAccount) (*Account, error)

// Registry resolves accounts from the cluster's PodIdentityAccounts.
type Registry struct {
	Reader    client.Reader
	APIReader client.Reader
	Home      *Account
	Build     Builder
	// OnBuild, when set, is called after an account is built (the drift
	// sweep then reads it at once instead of a period later).
	OnBuild func()

	mu    sync.Mutex
	built map[string]builtAccount // by PodIdentityAccount name
}

type builtAccount struct {
	generation int64
	uid        string
	account    *Account
}

// For is the account that holds the roles of the namespace's bindings: the
// one PodIdentityAccount selecting it, else the operator's own.
func (r *Registry) For(ctx context.Context, namespace string) (*Account, error) {
	nsLabels, err := objmeta.NamespaceLabels(ctx, r.Reader, r.APIReader, namespace)
	if err != nil {
		return nil, err
	}
	list := &v1alpha1.PodIdentityAccountList{}
	if err := r.Reader.List(ctx, list); err != nil {
		return nil, err
	}
	var selecting []*v1alpha1.PodIdentityAccount
	for i := range list.Items {
		if Selects(&list.Items[i], nsLabels) {
			selecting = append(selecting, &list.Items[i])
		}
	}
	switch len(selecting) {
	case 0:
		return r.Home, nil
	case 1:
		a, err := r.account(ctx, selecting[0])
		if err != nil {
			return nil, err
		}
		return Usable(ctx, a)
	}
	var names []string
	for _, a := range selecting {
		names = append(names, a.Name+" ("+a.Spec.AccountID+")")
	}
	slices.Sort(names)
	return nil, ConflictError{Namespace: namespace, Accounts: names}
}

// ByKey is the account a binding's status names: the operator's own for
// "", else a PodIdentityAccount of that AWS account (its roles there can
// only be reached while one exists).
func (r *Registry) ByKey(ctx context.Context, key string) (*Account, error) {
	if key == Home || (r.Home != nil && key == r.Home.Config.AccountID()) {
		return r.Home, nil
	}
	byID, err := r.resources(ctx)
	if err != nil {
		return nil, err
	}
	if pia := byID[key]; pia != nil {
		a, err := r.account(ctx, pia)
		if err != nil {
			return nil, err
		}
		return Usable(ctx, a)
	}
	return nil, UnavailableError{Account: key, Reason: "no PodIdentityAccount names it any more, so the operator cannot reach the roles it holds; " +
		"recreate the PodIdentityAccount (nothing was deleted in IAM)"}
}

// Selects reports whether the account selects a namespace with these
// labels (a selector that does not parse selects nothing).
func Selects(a *v1alpha1.PodIdentityAccount, nsLabels map[string]string) bool {
	if !a.DeletionTimestamp.IsZero() {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(&a.Spec.NamespaceSelector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(nsLabels))
}

// account builds (once per generation) the Account of a PodIdentityAccount.
func (r *Registry) account(ctx context.Context, pia *v1alpha1.PodIdentityAccount) (*Account, error) {
	if r.Home != nil && pia.Spec.AccountID == r.Home.Config.AccountID() {
		return r.Home, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.built[pia.Name]; ok && b.generation == pia.Generation && b.uid == string(pia.UID) {
		return b.account, nil
	}
	a, err := r.Build(ctx, pia)
	if err != nil {
		return nil, UnavailableError{Account: pia.Spec.AccountID, Reason: err.Error(), Err: err}
	}
	if r.built == nil {
		r.built = map[string]builtAccount{}
	}
	if old, ok := r.built[pia.Name]; ok && old.account.Stop != nil {
		old.account.Stop()
	}
	r.built[pia.Name] = builtAccount{generation: pia.Generation, uid: string(pia.UID), account: a}
	if r.OnBuild != nil {
		r.OnBuild()
	}
	return a, nil
}

// Others are the accounts of the cluster's PodIdentityAccounts the operator
// can act in now, one per AWS account (the first by resource name), the
// operator's own left out: what the drift sweep reads besides the operator's
// own account. An account that cannot be reached is left out (its
// PodIdentityAccount's Ready condition says why, its bindings report
// AccountUnavailable).
func (r *Registry) Others(ctx context.Context) ([]*Account, error) {
	byID, err := r.resources(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Account
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		a, err := r.account(ctx, byID[id])
		if err != nil || a.Key == Home {
			continue
		}
		if a, err = Usable(ctx, a); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// resources are the cluster's PodIdentityAccounts not being deleted, by AWS
// account ID: the first by resource name where two name the same account.
func (r *Registry) resources(ctx context.Context) (map[string]*v1alpha1.PodIdentityAccount, error) {
	list := &v1alpha1.PodIdentityAccountList{}
	if err := r.Reader.List(ctx, list); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.PodIdentityAccount) int { return strings.Compare(a.Name, b.Name) })
	out := map[string]*v1alpha1.PodIdentityAccount{}
	for i := range list.Items {
		pia := &list.Items[i]
		if _, seen := out[pia.Spec.AccountID]; !seen && pia.DeletionTimestamp.IsZero() {
			out[pia.Spec.AccountID] = pia
		}
	}
	return out, nil
}

// Forget drops what was built for a PodIdentityAccount (it was deleted).
func (r *Registry) Forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.built[name]; ok && old.account.Stop != nil {
		old.account.Stop()
	}
	delete(r.built, name)
}

// Usable is the account when the operator can act there now, else an
// UnavailableError that says why.
func Usable(ctx context.Context, a *Account) (*Account, error) {
	if a.Check == nil {
		return a, nil
	}
	if err := a.Check(ctx); err != nil {
		return nil, UnavailableError{Account: a.Key, Reason: err.Error(), Err: err}
	}
	return a, nil
}

// ErrInvalidSpec: a PodIdentityAccount's spec cannot be used as written.
var ErrInvalidSpec = errors.New("invalid PodIdentityAccount spec")

// Config is the role configuration of an account: the home account's, with
// the account's own path, prefix and boundary, and the cluster's OIDC
// provider as registered in that account plus the account's own additional
// issuers' (the operator's --additional-oidc-issuers are not inherited).
// EKS Pod Identity is offered as in the cluster's account (its associations
// live there): a binding's role here is the association's target role,
// reached through a hop role in the cluster's account (planner.Chain).
func Config(home role.Config, spec v1alpha1.PodIdentityAccountSpec) (role.Config, error) {
	c := home
	if spec.RolePath != "" {
		c.RolePath = spec.RolePath
	}
	if spec.RoleNamePrefix != "" {
		c.RoleNamePrefix = spec.RoleNamePrefix
	}
	c.PermissionsBoundaryARN = spec.PermissionsBoundaryARN
	c.ProviderARN = inAccount(home.ProviderARN, spec.AccountID)
	c.AdditionalProviders = nil
	seen := map[string]bool{home.Issuer: true}
	for _, issuer := range spec.AdditionalOIDCIssuers {
		id, err := policy.ProviderID(issuer)
		if err != nil {
			return c, fmt.Errorf("additionalOidcIssuers: %w: %w", err, ErrInvalidSpec)
		}
		if seen[id] {
			return c, fmt.Errorf("additionalOidcIssuers: %s is listed twice or is the cluster's own issuer: %w", issuer, ErrInvalidSpec)
		}
		seen[id] = true
		// The provider IAM names after the issuer, in this account.
		base, _, ok := strings.Cut(c.ProviderARN, ":oidc-provider/")
		if !ok {
			return c, fmt.Errorf("the cluster's OIDC provider ARN %s names no oidc-provider", c.ProviderARN)
		}
		c.AdditionalProviders = append(c.AdditionalProviders, policy.Provider{ARN: base + ":oidc-provider/" + id, ID: id})
	}
	return c, nil
}

// inAccount is an IAM ARN moved to another account.
func inAccount(arn, account string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return arn
	}
	parts[4] = account
	return strings.Join(parts, ":")
}

// IsConflict reports whether err is a ConflictError.
func IsConflict(err error) bool {
	var c ConflictError
	return errors.As(err, &c)
}

// IsUnavailable reports whether err is an UnavailableError.
func IsUnavailable(err error) bool {
	var u UnavailableError
	return errors.As(err, &u)
}

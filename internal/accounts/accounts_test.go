package accounts

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
)

var home = role.Config{ClusterName: "dev", RolePath: "/podidentity/", RoleNamePrefix: "k8s",
	PermissionsBoundaryARN: "arn:aws:iam::111111111111:policy/boundary",
	ProviderARN:            "arn:aws:iam::111111111111:oidc-provider/oidc.example.com/id/X", Issuer: "oidc.example.com/id/X",
	AdditionalProviders: []policy.Provider{{ARN: "arn:aws:iam::111111111111:oidc-provider/other.example.com", ID: "other.example.com"}},
	PodIdentity:         &identity.PodIdentity{Account: "111111111111"}}

func account(name, id string, labels map[string]string) *v1alpha1.PodIdentityAccount {
	return &v1alpha1.PodIdentityAccount{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec: v1alpha1.PodIdentityAccountSpec{AccountID: id, RoleARN: "arn:aws:iam::" + id + ":role/op",
			NamespaceSelector: metav1.LabelSelector{MatchLabels: labels}}}
}

// The configuration of another account: its own provider ARN (the
// cluster's issuer), its own additional issuers only (the operator's are not
// inherited), its path and prefix, its boundary or none (the operator's
// boundary is a policy of the operator's account), the cluster's Pod
// Identity (its associations are in the cluster's account).
func TestConfig(t *testing.T) {
	c, err := Config(home, v1alpha1.PodIdentityAccountSpec{AccountID: "222222222222", RolePath: "/teams/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ProviderARN != "arn:aws:iam::222222222222:oidc-provider/oidc.example.com/id/X" || c.Issuer != home.Issuer {
		t.Errorf("provider %s %s", c.ProviderARN, c.Issuer)
	}
	if len(c.AdditionalProviders) != 0 || len(home.AdditionalProviders) != 1 {
		t.Errorf("the operator's additional issuers are not inherited: %+v (home %+v)", c.AdditionalProviders, home.AdditionalProviders)
	}
	if c.RolePath != "/teams/" || c.RoleNamePrefix != "k8s" || c.PermissionsBoundaryARN != "" || c.PodIdentity != home.PodIdentity {
		t.Errorf("config %+v", c)
	}
	if c.AccountID() != "222222222222" || home.AccountID() != "111111111111" {
		t.Errorf("account IDs %s %s", c.AccountID(), home.AccountID())
	}

	c, err = Config(home, v1alpha1.PodIdentityAccountSpec{AccountID: "222222222222", AdditionalOIDCIssuers: []string{"https://old.example.com/id/Y"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Provider{{ARN: "arn:aws:iam::222222222222:oidc-provider/old.example.com/id/Y", ID: "old.example.com/id/Y"}}
	if !slices.Equal(c.AdditionalProviders, want) {
		t.Errorf("additional providers %+v, want %+v", c.AdditionalProviders, want)
	}
	for _, bad := range [][]string{{"https://oidc.example.com/id/X"}, {"https://a.example.com", "https://a.example.com"}, {"http://plain.example.com"}} {
		if _, err := Config(home, v1alpha1.PodIdentityAccountSpec{AccountID: "222222222222", AdditionalOIDCIssuers: bad}); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("additionalOidcIssuers %v: %v, want ErrInvalidSpec", bad, err)
		}
	}
}

func TestFor(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments", Labels: map[string]string{"acct": "b"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "both", Labels: map[string]string{"acct": "b", "also": "c"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine", Labels: map[string]string{"acct": "home"}}},
		account("b", "222222222222", map[string]string{"acct": "b"}),
		account("c", "333333333333", map[string]string{"also": "c"}),
		account("home", "111111111111", map[string]string{"acct": "home"}),
	}
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	builds := 0
	r := &Registry{Reader: c, Home: &Account{Key: Home, Config: home},
		Build: func(_ context.Context, pia *v1alpha1.PodIdentityAccount) (*Account, error) {
			builds++
			if pia.Name == "c" {
				return &Account{Key: pia.Spec.AccountID, Check: func(context.Context) error { return errors.New("AccessDenied") }}, nil
			}
			return &Account{Key: pia.Spec.AccountID, Name: pia.Name}, nil
		}}
	ctx := context.Background()
	if a, err := r.For(ctx, "plain"); err != nil || a.Key != Home {
		t.Errorf("plain: %+v %v", a, err)
	}
	if a, err := r.For(ctx, "payments"); err != nil || a.Key != "222222222222" {
		t.Errorf("payments: %+v %v", a, err)
	}
	if a, err := r.For(ctx, "mine"); err != nil || a != r.Home {
		t.Errorf("an account of the operator's own ID is the operator's own: %+v %v", a, err)
	}
	if _, err := r.For(ctx, "both"); !IsConflict(err) || !strings.Contains(err.Error(), "b (222222222222), c (333333333333)") {
		t.Errorf("both: %v", err)
	}
	if _, err := r.For(ctx, "payments"); err != nil || builds != 1 {
		t.Errorf("built %d times", builds)
	}
	if _, err := r.ByKey(ctx, "333333333333"); !IsUnavailable(err) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("an account whose check fails: %v", err)
	}
	if _, err := r.ByKey(ctx, "444444444444"); !IsUnavailable(err) {
		t.Errorf("an account no resource names: %v", err)
	}
	if a, err := r.ByKey(ctx, ""); err != nil || a != r.Home {
		t.Errorf("home: %+v %v", a, err)
	}
}

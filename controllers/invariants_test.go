package controllers_test

// Security invariants (docs/security-invariants.md), checked after every step
// of a seeded random sequence of tenant, admin and out-of-band operations.
// Everything is read back through the AWS SDK (moto) and the Kubernetes API;
// the checks below re-derive what is allowed on their own and never call the
// operator's packages.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

const (
	adminPolicy   = "arn:aws:iam::aws:policy/AdministratorAccess"
	permsPolicy   = "podidentity-permissions"
	roleARNAnnot  = "eks.amazonaws.com/role-arn"
	defaultSeed   = 20261127
	defaultSteps  = 150
	settleTimeout = 45 * time.Second
	fuzzLabel     = "test.podidentity.io/invariants"
	// fuzzAccount is the other AWS account of the sequence; the namespace
	// is served by it while its PodIdentityAccount exists and the namespace
	// carries fuzzAccountLabel.
	fuzzAccount      = "444444444444"
	fuzzAccountLabel = "test.podidentity.io/account"
)

// actionPool mixes allowed actions, built-in escalations and a typo.
var actionPool = []struct {
	action, resource string
}{
	{"dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/orders"},
	{"dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/orders"},
	{"s3:GetObject", "arn:aws:s3:::bucket/*"},
	{"s3:DeleteObject", "arn:aws:s3:::bucket/*"},
	{"iam:PassRole", "*"},
	{"sts:AssumeRole", "arn:aws:iam::*:role/*"},
	{"sts:AssumeRole", "arn:aws:iam::123456789012:role/reader"},
	{"ssm:SendCommand", "*"},
	{"eks:CreateAccessEntry", "*"},
	{"dynamodb:GetItemz", "*"},
}

// forbidden reports whether the built-in guardrails forbid an action on a
// resource, derived independently of internal/guard.
func forbidden(action string, resources []string) bool {
	a := strings.ToLower(action)
	switch {
	case a == "*" || strings.HasPrefix(a, "iam:") && !strings.HasPrefix(a, "iam:get") && !strings.HasPrefix(a, "iam:list"):
		return true
	case strings.HasPrefix(a, "sts:assume"):
		return true // on any role: no guardrail in the sequence names assumable roles
	case a == "ssm:sendcommand" || a == "ssm:startsession" || a == "lambda:updatefunctioncode" || a == "ecs:runtask":
		return true
	case strings.HasPrefix(a, "eks:createaccessentry"), strings.HasPrefix(a, "organizations:"):
		return true
	}
	return false
}

type fuzzGuardrail struct {
	denied, allowed []string
	forbidRetain    bool
	rolePattern     string
	identities      []v1alpha1.Identity
}

type world struct {
	ns        string
	rng       *rand.Rand
	seed      uint64
	foreign   map[string]string // foreign role name -> snapshot
	managed   []string          // managed policy pool
	dangerous map[string]bool   // managed policies the guardrails never allow
	guard     *fuzzGuardrail
	log       []string
	roleN     int
	// iamB acts in fuzzAccount; account and labelled say whether the
	// PodIdentityAccount exists and the namespace is labelled for it.
	iamB              *iam.Client
	account, labelled bool
	// critical is another team's Deployment of the namespace (its pods run
	// as ServiceAccount payments, which no binding of the sequence names);
	// forged pods claim it as their owner. podN numbers them.
	critical *appsv1.Deployment
	podN     int
	// ledger is another team's StatefulSet (ServiceAccount payments); with
	// OrderedReady and no kubelet it never creates or deletes a pod past
	// its pod 0, so a pod claimed as its ordinal ledgerN stays its own.
	ledger  *appsv1.StatefulSet
	ledgerN int32
	// associations are the namespace's associations as the EKS API shows
	// them at the current check; externalIDs are those naming a target
	// role (EKS Pod Identity in the other account), by the binding their
	// tags name, Retain records left out.
	associations []*ekstypes.PodIdentityAssociation
	externalIDs  map[string]string
	// serviceAccounts are the namespace's ServiceAccounts' resource
	// versions at the last check that passed everything else (I7: no
	// write loop).
	serviceAccounts map[string]string
}

// readAssociations reads the namespace's associations once per check.
func (w *world) readAssociations() error {
	w.associations, w.externalIDs = nil, map[string]string{}
	list, err := eksc.ListPodIdentityAssociations(ctx, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String(clusterName), Namespace: aws.String(w.ns)})
	if err != nil {
		return err
	}
	for _, s := range list.Associations {
		out, err := eksc.DescribePodIdentityAssociation(ctx, &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String(clusterName), AssociationId: s.AssociationId})
		if err != nil {
			return err // deleted meanwhile: look again
		}
		a := out.Association
		w.associations = append(w.associations, a)
		if aws.ToString(a.TargetRoleArn) != "" && a.Tags["podidentity.io/retained"] != "true" {
			w.externalIDs[a.Tags["podidentity.io/binding"]] = aws.ToString(a.ExternalId)
		}
	}
	return nil
}

// hopName is the name the README gives a binding's hop role (the suite sets
// no role name prefix).
func (w *world) hopName(binding string) string {
	return clusterName + "_" + w.ns + "_" + binding + "_hop"
}

// isHop reports whether a role of the operator's account is the hop role of
// its owner, a Pod Identity binding whose role is in the other account.
func (w *world) isHop(v accountView, name string, owner *v1alpha1.PodIdentityBinding) bool {
	return v.key == "" && name == w.hopName(owner.Name) && owner.Status.Account != "" && owner.Status.Identity == v1alpha1.IdentityEKSPodIdentity
}

// frozen reports whether the binding waits for an account the operator
// cannot reach (A2): nothing of it is corrected meanwhile.
func (w *world) frozen(b *v1alpha1.PodIdentityBinding) bool {
	c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
	return !w.account && c != nil && c.Reason == v1alpha1.ReasonAccountUnavailable
}

func envUint(name string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

var _ = Describe("Security invariants", Label("invariants"), func() {
	It("hold after every step of a seeded random sequence of operations", func() {
		seed, steps := envUint("INVARIANT_SEED", defaultSeed), int(envUint("INVARIANT_STEPS", defaultSteps))
		w := newWorld(seed)
		AddReportEntry("invariant seed", fmt.Sprintf("INVARIANT_SEED=%d INVARIANT_STEPS=%d", seed, steps))
		DeferCleanup(w.cleanup)
		for i := range steps {
			op := w.step()
			w.log = append(w.log, fmt.Sprintf("%d: %s", i, op))
			GinkgoWriter.Printf("invariants step %d: %s\n", i, op)
			Eventually(w.check, settleTimeout, 500*time.Millisecond).Should(Succeed(),
				"invariant broken after step %d (%s); replay with INVARIANT_SEED=%d INVARIANT_STEPS=%d\nsteps:\n%s",
				i, op, seed, i+1, strings.Join(w.log, "\n"))
		}
	})
})

func newWorld(seed uint64) *world {
	// The only namespace with fuzzLabel: the fuzz guardrail selects it alone.
	ns := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true", fuzzLabel: "true"})
	refuseStatusWrites()
	w := &world{ns: ns, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), foreign: map[string]string{}, dangerous: map[string]bool{adminPolicy: true}}

	mk := func(name, doc string) string {
		out, err := iamc.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
		Expect(err).NotTo(HaveOccurred())
		return aws.ToString(out.Policy.Arn)
	}
	readOnly := mk(ns+"-readonly", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":"*"}]}`)
	iamStar := mk(ns+"-iam-star", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}`)
	w.dangerous[iamStar] = true
	w.managed = []string{readOnly, iamStar, adminPolicy}

	// Foreign roles: one untagged, one that looks like another cluster's.
	for i, tags := range [][]types.Tag{nil, {{Key: aws.String("podidentity.io/cluster"), Value: aws.String("other")},
		{Key: aws.String("podidentity.io/namespace"), Value: aws.String(ns)}, {Key: aws.String("podidentity.io/binding"), Value: aws.String("b0")}}} {
		name := fmt.Sprintf("%s_foreign-%d", ns, i)
		_, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), Path: aws.String(rolePath), AssumeRolePolicyDocument: aws.String(foreignTrust), Tags: tags})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("own"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)})
		Expect(err).NotTo(HaveOccurred())
		w.foreign[name] = snapshot(name)
	}
	w.iamB = iamIn(fuzzAccount)
	_, err := testenv.RegisterOIDCProvider(ctx, w.iamB, issuerURL)
	Expect(err).NotTo(HaveOccurred())
	w.critical = deployment(ns, "critical", "payments", 1)
	labels := map[string]string{"app": "ledger"}
	w.ledger = &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "ledger",
		PodManagementPolicy: appsv1.OrderedReadyPodManagement, UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{ServiceAccountName: "payments", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	Expect(k8s.Create(ctx, w.ledger)).To(Succeed())
	return w
}

// views are the accounts that may hold the namespace's roles.
func (w *world) views() []accountView {
	return []accountView{w.view(""), w.view(fuzzAccount)}
}

func (w *world) view(key string) accountView {
	if key == "" || key == testenv.Account {
		return accountView{key: "", c: iamc, provider: providerARN}
	}
	return accountView{key: key, c: w.iamB, provider: strings.Replace(providerARN, ":"+testenv.Account+":", ":"+key+":", 1)}
}

// changeAccount creates or deletes the namespace's PodIdentityAccount, or
// labels or unlabels the namespace for it: an admin's steps.
func (w *world) changeAccount() string {
	if w.pick(2) == 0 {
		return w.changeAccountResource()
	}
	w.labelled = !w.labelled
	Eventually(func() error {
		n := &corev1.Namespace{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: w.ns}, n); err != nil {
			return err
		}
		if w.labelled {
			n.Labels[fuzzAccountLabel] = w.ns
		} else {
			delete(n.Labels, fuzzAccountLabel)
		}
		return k8s.Update(ctx, n)
	}, timeout, interval).Should(Succeed())
	return fmt.Sprintf("label the namespace for the account: %v", w.labelled)
}

// delete deletes a binding and waits until it is gone, except while the
// other account's PodIdentityAccount is gone: a binding with a role there
// then keeps its finalizer until the account returns (A2), so only the
// deletion's start is awaited.
func (w *world) delete(name string) {
	if w.account {
		deleteBinding(w.ns, name)
		return
	}
	b := &v1alpha1.PodIdentityBinding{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: name}, b); err != nil {
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		return
	}
	Expect(client.IgnoreNotFound(k8s.Delete(ctx, b))).To(Succeed())
}

// changeAccountResource creates the namespace's PodIdentityAccount, or
// deletes it.
func (w *world) changeAccountResource() string {
	a := &v1alpha1.PodIdentityAccount{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}
	if w.account {
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, a))).To(Succeed())
		w.account = false
		return "delete the PodIdentityAccount"
	}
	a.Spec = v1alpha1.PodIdentityAccountSpec{AccountID: fuzzAccount, RoleARN: "arn:aws:iam::" + fuzzAccount + ":role/podidentity-operator",
		NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{fuzzAccountLabel: w.ns}}}
	Eventually(func() error { return client.IgnoreAlreadyExists(k8s.Create(ctx, a)) }, timeout, interval).Should(Succeed())
	w.account = true
	return "create the PodIdentityAccount"
}

// checkAccountBoundary: a Ready binding's roles are all in the account that
// serves its namespace; a binding waiting for an account it cannot reach
// (AccountUnavailable: its PodIdentityAccount was deleted) has created no
// role elsewhere meanwhile.
func (w *world) checkAccountBoundary(bs []v1alpha1.PodIdentityBinding, owners map[string]string) error {
	// A3: the other account's credentials were used only for this
	// namespace's roles (the proxy attributes every request to the account
	// of the credentials that signed it; only this namespace is ever served
	// there, and every role name of the sequence carries the namespace).
	for name := range proxy.RolesNamedIn(fuzzAccount) {
		if !strings.Contains(name, w.ns) {
			return fmt.Errorf("A3: a request signed with account %s's credentials named role %s, which is not a role of namespace %s", fuzzAccount, name, w.ns)
		}
	}
	serving := ""
	if w.account && w.labelled {
		serving = fuzzAccount
	}
	for _, b := range bs {
		ready := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case ready.Status == metav1.ConditionTrue:
			if b.Status.Account != serving {
				return fmt.Errorf("A1: binding %s is Ready with a role in account %q; its namespace is served by %q", b.Name, b.Status.Account, serving)
			}
			for _, o := range b.Status.OwnedRoles {
				if b.Status.Identity == v1alpha1.IdentityEKSPodIdentity && o.Account == "" && o.Name == w.hopName(b.Name) {
					continue // its hop role, in the cluster's account by design
				}
				if o.Account != serving {
					return fmt.Errorf("A1: Ready binding %s still owns role %s in account %q; its namespace is served by %q", b.Name, o.Name, o.Account, serving)
				}
			}
		case ready.Reason == v1alpha1.ReasonAccountUnavailable:
			if w.account {
				return fmt.Errorf("A2: binding %s reports AccountUnavailable although its account's PodIdentityAccount exists: %s", b.Name, ready.Message)
			}
			for key, owner := range owners {
				if key == ":"+w.hopName(b.Name) {
					continue // its hop role, made with the target
				}
				if owner == b.Name && !strings.HasPrefix(key, fuzzAccount+":") {
					return fmt.Errorf("A2: binding %s cannot reach account %s yet has role %s elsewhere", b.Name, fuzzAccount, key)
				}
			}
		}
	}
	return nil
}

func (w *world) cleanup() {
	if !w.account {
		// Bindings with roles in the other account are deleted only while
		// the operator can reach it (A2).
		w.changeAccountResource()
	}
	list := &v1alpha1.PodIdentityBindingList{}
	Expect(k8s.List(ctx, list, client.InNamespace(w.ns))).To(Succeed())
	for _, b := range list.Items {
		deleteBinding(w.ns, b.Name)
	}
	_ = client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
	_ = client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityAccount{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
}

func (w *world) pick(n int) int { return w.rng.IntN(n) }

func (w *world) bindings() []v1alpha1.PodIdentityBinding {
	list := &v1alpha1.PodIdentityBindingList{}
	Expect(k8s.List(ctx, list, client.InNamespace(w.ns))).To(Succeed())
	return list.Items
}

func (w *world) statements() []v1alpha1.PermissionStatement {
	var out []v1alpha1.PermissionStatement
	for range 1 + w.pick(2) {
		// Mostly harmless actions, sometimes an escalation or a typo.
		i := w.pick(4)
		if w.pick(4) == 0 {
			i = w.pick(len(actionPool))
		}
		a := actionPool[i]
		out = append(out, v1alpha1.PermissionStatement{Actions: []string{a.action}, Resources: []string{a.resource}})
	}
	return out
}

// update retries a read-modify-write of a binding on conflicts.
func (w *world) update(name string, mutate func(b *v1alpha1.PodIdentityBinding)) {
	Eventually(func() error {
		b := &v1alpha1.PodIdentityBinding{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: name}, b); err != nil {
			return client.IgnoreNotFound(err)
		}
		mutate(b)
		return k8s.Update(ctx, b)
	}, timeout, interval).Should(Succeed())
}

// step performs one random operation and describes it.
func (w *world) step() string {
	bs := w.bindings()
	var some *v1alpha1.PodIdentityBinding
	if len(bs) > 0 {
		some = &bs[w.pick(len(bs))]
	}
	// ownedRole is a binding's current role, and the account it is in.
	ownedRole := func() (string, string) {
		for _, b := range bs {
			if b.Status.RoleName != "" && w.pick(2) == 0 {
				return b.Status.Account, b.Status.RoleName
			}
		}
		for _, b := range bs {
			if b.Status.RoleName != "" {
				return b.Status.Account, b.Status.RoleName
			}
		}
		return "", ""
	}
	switch k := w.pick(27); {
	case k >= 25:
		return w.changeAccount()
	case k >= 20 && some != nil:
		return w.hostile(some)
	case k < 5 || some == nil:
		name := fmt.Sprintf("b%d", w.pick(4))
		b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}, Spec: v1alpha1.PodIdentityBindingSpec{
			ServiceAccountName: fmt.Sprintf("sa%d", w.pick(3)), Permissions: w.statements(),
			DeletionPolicy: []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyRetain}[w.pick(2)],
			Identity:       w.identity()}}
		if w.pick(3) == 0 {
			b.Spec.ManagedPolicyArns = []string{w.managed[w.pick(len(w.managed))]}
		}
		if err := k8s.Create(ctx, b); apierrors.IsAlreadyExists(err) {
			return "create " + name + ": exists"
		} else {
			Expect(err).NotTo(HaveOccurred())
		}
		return fmt.Sprintf("create %s sa=%s %v managed=%v %s identity=%q", name, b.Spec.ServiceAccountName, b.Spec.Permissions, b.Spec.ManagedPolicyArns, b.Spec.DeletionPolicy, b.Spec.Identity)
	case k < 7:
		stmts := w.statements()
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.Permissions = stmts })
		return fmt.Sprintf("edit %s permissions %v", some.Name, stmts)
	case k < 8 && w.pick(2) == 0:
		kind := w.identity()
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.Identity = kind })
		return fmt.Sprintf("switch %s to identity=%q", some.Name, kind)
	case k < 8:
		sa := fmt.Sprintf("sa%d", w.pick(3))
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.ServiceAccountName = sa })
		return "move " + some.Name + " to " + sa
	case k < 10:
		var name string
		switch w.pick(5) {
		case 0:
			w.roleN++
			name = fmt.Sprintf("%s_fuzz-r%d", w.ns, w.roleN)
		case 1:
			name = bs[w.pick(len(bs))].Status.RoleName
		case 2:
			name = fmt.Sprintf("%s_foreign-%d", w.ns, w.pick(2))
		case 3:
			// Another namespace's generated name (issue 17 defect 8).
			name = fmt.Sprintf("%s_squatted-%s_b%d", clusterName, w.ns, w.pick(3))
		}
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.RoleName = name })
		return fmt.Sprintf("rename %s roleName=%q", some.Name, name)
	case k < 11:
		name := fmt.Sprintf("b%d", 4+w.pick(2))
		b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
			Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: some.Spec.ServiceAccountName, Permissions: w.statements()}}
		if err := k8s.Create(ctx, b); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		return "compete " + name + " for " + some.Spec.ServiceAccountName
	case k < 13:
		return w.changeGuardrail()
	case k < 16:
		return w.outOfBand(ownedRole())
	case k < 17:
		return w.outOfBandAssociation()
	case k < 19:
		w.delete(some.Name)
		return "delete " + some.Name + " (" + string(some.Spec.DeletionPolicy) + ")"
	default:
		restartOperator()
		return "restart the operator"
	}
}

// hostile is one of the hostile-tenant steps of issue 17.
func (w *world) hostile(some *v1alpha1.PodIdentityBinding) string {
	switch w.pick(5) {
	case 4:
		// A pod of the binding's ServiceAccount claims another team's
		// Deployment as its owner, by its real UID, directly or through
		// its ReplicaSet, and the binding asks for restarts (issue 17
		// defect 9). The pod names another role (the webhook leaves a
		// container that sets one alone), so it is stale at once.
		w.podN++
		// As its controller: the operator follows only controller references.
		// (The ReplicaSet controller releases a pod its selector does not
		// match, so this claim may be short-lived; the pods unit tests
		// cover every route deterministically.)
		ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.critical.Name, UID: w.critical.UID, Controller: ptr.To(true)}
		if w.pick(2) == 0 {
			rs := replicaSetOf(w.critical)
			ref = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}
		}
		sa := some.Spec.ServiceAccountName
		name, labels := fmt.Sprintf("forged-%d", w.podN), map[string]string(nil)
		if w.pick(2) == 0 {
			// Really the StatefulSet's: its next ordinal, once it wants one
			// more replica (it creates none itself while pod 0 is not Ready).
			w.ledgerN++
			Eventually(func() error {
				ss := &appsv1.StatefulSet{}
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(w.ledger), ss); err != nil {
					return err
				}
				ss.Spec.Replicas = ptr.To(w.ledgerN + 1)
				return k8s.Update(ctx, ss)
			}, timeout, interval).Should(Succeed())
			name, labels = fmt.Sprintf("ledger-%d", w.ledgerN), map[string]string{"app": "ledger"}
			ref = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: w.ledger.Name, UID: w.ledger.UID, Controller: ptr.To(true)}
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name, Labels: labels, OwnerReferences: []metav1.OwnerReference{ref}},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1",
				Env: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::" + testenv.Account + ":role/stale"}}}}}}
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout })
		return fmt.Sprintf("forged pod %s of %s controlled by %s %s; %s restarts with Rollout", pod.Name, sa, ref.Kind, ref.Name, some.Name)
	case 0:
		// An oversized spec: 10 statements of 100 iam:* each.
		var stmts []v1alpha1.PermissionStatement
		for range 10 {
			st := v1alpha1.PermissionStatement{Resources: []string{"*"}}
			for range 100 {
				st.Actions = append(st.Actions, "iam:*")
			}
			stmts = append(stmts, st)
		}
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { b.Spec.Permissions = stmts })
		return "oversized spec for " + some.Name
	case 1:
		// The status becomes unwritable while the role is renamed, then
		// writable again.
		w.roleN++
		name := fmt.Sprintf("%s_fuzz-r%d", w.ns, w.roleN)
		refused := metricSum("podidentity_status_write_failures_total", nil)
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) {
			b.Labels = map[string]string{refuseStatusLabel: "true"}
			b.Spec.RoleName = name
		})
		// A reconcile runs while the status is refused.
		Eventually(func() float64 { return metricSum("podidentity_status_write_failures_total", nil) }, timeout, interval).
			Should(BeNumerically(">", refused))
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) { delete(b.Labels, refuseStatusLabel) })
		return fmt.Sprintf("rename %s roleName=%q while its status is refused", some.Name, name)
	case 2:
		// Retain plus a typo, then delete.
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) {
			b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
			b.Spec.Permissions = append(b.Spec.Permissions, v1alpha1.PermissionStatement{Actions: []string{"s3:GetObjekt"}, Resources: []string{"*"}})
		})
		w.delete(some.Name)
		return "invalid spec + Retain + delete " + some.Name
	default:
		// Move away with a typo, then a competitor names the old ServiceAccount.
		old := some.Spec.ServiceAccountName
		sa := fmt.Sprintf("sa%d", w.pick(3))
		w.update(some.Name, func(b *v1alpha1.PodIdentityBinding) {
			b.Spec.ServiceAccountName = sa
			b.Spec.Permissions = append(b.Spec.Permissions, v1alpha1.PermissionStatement{Actions: []string{"s3:GetObjekt"}, Resources: []string{"*"}})
		})
		name := fmt.Sprintf("b%d", 4+w.pick(2))
		b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
			Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: old, Permissions: w.statements()}}
		if err := k8s.Create(ctx, b); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		return fmt.Sprintf("move %s to %s with a typo; %s competes for %s", some.Name, sa, name, old)
	}
}

func (w *world) changeGuardrail() string {
	g := &fuzzGuardrail{}
	switch w.pick(6) {
	case 0:
		w.guard = nil
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))).To(Succeed())
		return "delete guardrail"
	case 1:
		g.denied = []string{"dynamodb:PutItem"}
	case 2:
		g.denied = []string{"s3:*"}
	case 3:
		g.allowed = []string{"dynamodb:*"}
	case 4:
		g.forbidRetain = true
	case 5:
		g.rolePattern = w.ns + "_fuzz-*"
	}
	if w.pick(4) == 0 {
		g.identities = []v1alpha1.Identity{[]v1alpha1.Identity{v1alpha1.IdentityIRSA, v1alpha1.IdentityEKSPodIdentity}[w.pick(2)]}
	}
	w.guard = g
	spec := v1alpha1.PodIdentityGuardrailSpec{NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{fuzzLabel: "true"}},
		DeniedActions: g.denied, AllowedActions: g.allowed, ForbidRetain: g.forbidRetain, RoleNamePattern: g.rolePattern,
		AllowedIdentities: g.identities}
	Eventually(func() error {
		cur := &v1alpha1.PodIdentityGuardrail{}
		err := k8s.Get(ctx, client.ObjectKey{Name: w.ns}, cur)
		if apierrors.IsNotFound(err) {
			return k8s.Create(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: w.ns}, Spec: spec})
		}
		if err != nil {
			return err
		}
		cur.Spec = spec
		return k8s.Update(ctx, cur)
	}, timeout, interval).Should(Succeed())
	return fmt.Sprintf("guardrail %+v", *g)
}

// outOfBand changes a role the operator manages, in the account it is in,
// the way a person or another tool with IAM access there would.
func (w *world) outOfBand(account, name string) string {
	if name == "" {
		return "out-of-band: no role"
	}
	v := w.view(account)
	c := v.c
	var err error
	what := ""
	switch w.pick(5) {
	case 0:
		what = "extra inline policy with iam:*"
		_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("backdoor"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}`)})
	case 1:
		what = "attach AdministratorAccess"
		_, err = c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(adminPolicy)})
	case 2:
		what = "widen trust to StringLike *"
		r, gerr := v.role(name)
		if gerr != nil {
			return "out-of-band: " + gerr.Error()
		}
		doc := decoded(r.AssumeRolePolicyDocument)
		for _, st := range doc["Statement"].([]any) {
			st.(map[string]any)["Condition"] = map[string]any{"StringLike": map[string]any{issuerKey() + ":sub": "*"}}
		}
		_, err = c.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(name), PolicyDocument: aws.String(mustJSON(doc))})
	case 3:
		what = "delete the role"
		for _, p := range v.inlineNames(name) {
			_, _ = c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		}
		out, _ := c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
		if out != nil {
			for _, p := range out.AttachedPolicies {
				_, _ = c.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(name), PolicyArn: p.PolicyArn})
			}
		}
		_, err = c.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)})
	case 4:
		// IAM keeps one key whatever its case: re-tag in another case.
		what = "re-tag the namespace tag in upper case"
		r, gerr := v.role(name)
		if gerr != nil {
			return "out-of-band: " + gerr.Error()
		}
		for _, t := range r.Tags {
			if strings.EqualFold(aws.ToString(t.Key), "podidentity.io/namespace") {
				_, _ = c.UntagRole(ctx, &iam.UntagRoleInput{RoleName: aws.String(name), TagKeys: []string{aws.ToString(t.Key)}})
				_, err = c.TagRole(ctx, &iam.TagRoleInput{RoleName: aws.String(name), Tags: []types.Tag{{Key: aws.String("PodIdentity.IO/Namespace"), Value: t.Value}}})
			}
		}
	}
	return fmt.Sprintf("out-of-band on %s (account %q): %s (err=%v)", name, account, what, err)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func inlinePolicyNamesOrNil(role string) []string {
	out, err := iamc.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(role)})
	if err != nil {
		return nil
	}
	return out.PolicyNames
}

// snapshot renders everything about a role that an invariant compares.
func snapshot(name string) string {
	r, err := getRole(name)
	if err != nil {
		return "error: " + err.Error()
	}
	var tags []string
	for _, t := range r.Tags {
		tags = append(tags, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	slices.Sort(tags)
	s := fmt.Sprintf("id=%s trust=%v tags=%v", aws.ToString(r.RoleId), decoded(r.AssumeRolePolicyDocument), tags)
	for _, p := range inlinePolicyNamesOrNil(name) {
		out, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		if err == nil {
			s += fmt.Sprintf(" inline[%s]=%v", p, decoded(out.PolicyDocument))
		}
	}
	out, err := iamc.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	if err == nil {
		for _, p := range out.AttachedPolicies {
			s += " attached=" + aws.ToString(p.PolicyArn)
		}
	}
	return s
}

func tagOf(r *types.Role, key string) string {
	for _, t := range r.Tags {
		if strings.EqualFold(aws.ToString(t.Key), key) {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// check verifies I1-I7 for the world's namespace once every binding has
// been reconciled at its current generation.
func (w *world) check() error {
	bs := w.bindings()
	for _, b := range bs {
		c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.ObservedGeneration != b.Generation {
			return fmt.Errorf("binding %s not reconciled at generation %d yet", b.Name, b.Generation)
		}
	}
	byName := map[string]*v1alpha1.PodIdentityBinding{}
	for i := range bs {
		byName[bs[i].Name] = &bs[i]
		// I7 (the part a binding shows): what the operator writes about a
		// binding is bounded, whatever its spec.
		for _, c := range bs[i].Status.Conditions {
			if len(c.Message) > 4096 {
				return fmt.Errorf("I7: binding %s's %s message is %d bytes", bs[i].Name, c.Type, len(c.Message))
			}
		}
	}

	// I9: no workload is restarted unless its pod template runs as the
	// ServiceAccount of the binding that restarts it: another team's
	// Deployment, claimed by forged pods, never is.
	if a := templateAnnotations(w.ns, w.critical.Name)(); a["podidentity.io/restarted-for-role"] != "" || a["kubectl.kubernetes.io/restartedAt"] != "" {
		return fmt.Errorf("I9: Deployment %s (ServiceAccount payments) was restarted: %v", w.critical.Name, a)
	}
	ss := &appsv1.StatefulSet{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(w.ledger), ss); err != nil {
		return err
	}
	if a := ss.Spec.Template.Annotations; a["podidentity.io/restarted-for-role"] != "" || a["kubectl.kubernetes.io/restartedAt"] != "" {
		return fmt.Errorf("I9: StatefulSet %s (ServiceAccount payments) was restarted: %v", w.ledger.Name, a)
	}

	// I4: foreign roles are untouched.
	for name, before := range w.foreign {
		if after := snapshot(name); after != before {
			return fmt.Errorf("I4: foreign role %s changed:\nbefore %s\nafter  %s", name, before, after)
		}
	}

	// I1-I3 and I6 in every account that may hold the namespace's roles.
	if err := w.readAssociations(); err != nil {
		return err
	}
	trusted := map[string]string{} // subject -> account:role
	owners := map[string]string{}  // account:role -> binding
	for _, v := range w.views() {
		if err := w.checkRoles(v, bs, byName, trusted, owners); err != nil {
			return err
		}
	}
	if err := w.checkAccountBoundary(bs, owners); err != nil {
		return err
	}

	if err := w.checkAssociations(byName); err != nil {
		return err
	}

	// I5: each ServiceAccount's role annotation points at the role of the
	// binding that holds it, or is absent.
	sas := &corev1.ServiceAccountList{}
	if err := k8s.List(ctx, sas, client.InNamespace(w.ns)); err != nil {
		return err
	}
	holders := map[string]string{}
	for _, b := range bs {
		if sa := b.Status.ServiceAccountName; sa != "" {
			if other, dup := holders[sa]; dup {
				return fmt.Errorf("I5: ServiceAccount %s is held by bindings %s and %s", sa, other, b.Name)
			}
			holders[sa] = b.Name
		}
	}
	for _, sa := range sas.Items {
		arn, ok := sa.Annotations[roleARNAnnot]
		if !ok {
			continue
		}
		holder := byName[holders[sa.Name]]
		if holder == nil {
			// Only a binding deleted with Retain leaves its annotation, and
			// then the role is a Retain record.
			r, err := w.view(strings.Split(arn, ":")[4]).role(arn[strings.LastIndex(arn, "/")+1:])
			if err != nil || tagOf(r, "podidentity.io/retained") != "true" {
				return fmt.Errorf("I5: ServiceAccount %s is annotated with %s but no binding holds it and the role is not retained (%v)", sa.Name, arn, err)
			}
			continue
		}
		if arn != holder.Status.RoleArn {
			return fmt.Errorf("I5: ServiceAccount %s is annotated with %s; its binding %s has role %s", sa.Name, arn, holder.Name, holder.Status.RoleArn)
		}
		if holder.Status.Identity == v1alpha1.IdentityEKSPodIdentity {
			return fmt.Errorf("I5: ServiceAccount %s keeps the IRSA annotation %s while its binding %s uses EKS Pod Identity", sa.Name, arn, holder.Name)
		}
		if _, err := w.view(holder.Status.Account).role(holder.Status.RoleName); err != nil {
			if c := meta.FindStatusCondition(holder.Status.Conditions, v1alpha1.ConditionReady); holder.Status.Account != "" && !w.account &&
				c != nil && c.Reason == v1alpha1.ReasonAccountUnavailable {
				continue // deleted out of band while the account is unreachable: frozen until it returns (A2)
			}
			return fmt.Errorf("I5: ServiceAccount %s points at role %s of account %q: %v", sa.Name, holder.Status.RoleName, holder.Status.Account, err)
		}
	}

	// I7 (no write loop, issue 17 defect 3): once everything above holds,
	// the operator stops writing the namespace's ServiceAccounts. The check
	// passes only when they are as the previous passing check saw them, so
	// bindings that keep rewriting an annotation never settle.
	versions := map[string]string{}
	for _, sa := range sas.Items {
		versions[sa.Name] = sa.ResourceVersion
	}
	if !maps.Equal(versions, w.serviceAccounts) {
		w.serviceAccounts = versions
		return errors.New("I7: the namespace's ServiceAccounts changed since the last check; waiting for them to settle")
	}
	return nil
}

// accountView is how the invariant check reads one AWS account: its IAM
// client and the cluster's OIDC provider as registered there.
type accountView struct {
	key      string // "" the operator's own account
	c        *iam.Client
	provider string
}

func (v accountView) role(name string) (*types.Role, error) {
	out, err := v.c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return nil, err
	}
	return out.Role, nil
}

func (v accountView) inlineNames(name string) []string {
	out, err := v.c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		return nil
	}
	return out.PolicyNames
}

func (v accountView) describe(name string) string {
	if v.key == "" {
		return snapshot(name)
	}
	r, err := v.role(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("account=%s id=%s trust=%v tags=%v", v.key, aws.ToString(r.RoleId), decoded(r.AssumeRolePolicyDocument), r.Tags)
}

// checkRoles verifies I1, I2, I3 and I6 for the namespace's roles in one
// account. trusted (subject -> account:role) is shared by every account, so
// a ServiceAccount trusted by roles in two accounts breaks I2; owners
// collects account:role -> the binding its tags name.
func (w *world) checkRoles(v accountView, bs []v1alpha1.PodIdentityBinding, byName map[string]*v1alpha1.PodIdentityBinding,
	trusted, owners map[string]string) error {
	// Every role of this namespace in the account.
	var roles []types.Role
	pages := iam.NewListRolesPaginator(v.c, &iam.ListRolesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, r := range page.Roles {
			if strings.Contains(aws.ToString(r.RoleName), w.ns) && !strings.Contains(aws.ToString(r.RoleName), "_foreign-") {
				roles = append(roles, r)
			}
		}
	}
	sub := strings.TrimPrefix(issuerURL, "https://") + ":sub"
	sub2 := issuerKey() + ":sub"
	for _, listed := range roles {
		name := aws.ToString(listed.RoleName)
		r, err := v.role(name)
		var nse *types.NoSuchEntityException
		if errors.As(err, &nse) {
			continue
		}
		if err != nil {
			return err
		}
		if tagOf(r, "podidentity.io/cluster") != clusterName {
			return fmt.Errorf("role %s in this namespace's names carries no ownership tag for this cluster: %s", name, v.describe(name))
		}
		if tagOf(r, "podidentity.io/retained") == "true" {
			continue // a Retain record: outside the operator's management
		}
		if owners != nil {
			owners[v.key+":"+name] = tagOf(r, "podidentity.io/binding")
		}
		// I6, from IAM alone: its tags name a live binding of this namespace.
		if tagOf(r, "podidentity.io/namespace") != w.ns || byName[tagOf(r, "podidentity.io/binding")] == nil {
			return fmt.Errorf("I6: role %s is tagged for %s/%s, which is not a live binding, and is not retained", name,
				tagOf(r, "podidentity.io/namespace"), tagOf(r, "podidentity.io/binding"))
		}
		// I1: exactly one live binding's status names it (name and ID).
		var owner *v1alpha1.PodIdentityBinding
		for i := range bs {
			for _, o := range bs[i].Status.OwnedRoles {
				if o.Name == name && o.Account == v.key && o.ID == aws.ToString(r.RoleId) {
					if owner != nil {
						return fmt.Errorf("I1: role %s is claimed by bindings %s and %s", name, owner.Name, bs[i].Name)
					}
					owner = &bs[i]
				}
			}
		}
		if owner == nil {
			return fmt.Errorf("I1: role %s (id %s) belongs to no live binding and is not retained: %s", name, aws.ToString(r.RoleId), v.describe(name))
		}
		if tagOf(r, "podidentity.io/namespace") != w.ns || tagOf(r, "podidentity.io/binding") != owner.Name {
			return fmt.Errorf("I1: role %s's ownership tags do not name its binding %s: %v", name, owner.Name, r.Tags)
		}

		// I2 and I3 are not enforced on a role the operator cannot reach
		// (A2: its PodIdentityAccount was deleted; the roles there are
		// frozen, out-of-band changes included, until it returns,
		// docs/security-invariants.md).
		if v.key != "" && w.frozen(owner) {
			continue
		}

		// I2: the trust names exactly one ServiceAccount, the binding's
		// current one, and no other role trusts it, whatever the mechanism:
		// evaluated as STS would for every ServiceAccount of the namespace.
		// (None for a parked role.)
		hop := w.isHop(v, name, owner)
		current := name == owner.Status.RoleName && v.key == owner.Status.Account || hop
		if got := w.usableBy(aws.ToString(r.AssumeRolePolicyDocument), v.provider); len(got) > 1 ||
			len(got) == 1 && (got[0] != owner.Status.ServiceAccountName || !current) {
			return fmt.Errorf("I2: role %s (account %q) can be obtained by ServiceAccounts %v; its binding %s uses role %q (account %q, identity %q) with ServiceAccount %q (%v; association external ID %q)",
				name, v.key, got, owner.Name, owner.Status.RoleName, owner.Status.Account, owner.Status.Identity, owner.Status.ServiceAccountName,
				meta.FindStatusCondition(owner.Status.Conditions, v1alpha1.ConditionReady), w.externalIDs[owner.Name])
		}
		trust := decoded(r.AssumeRolePolicyDocument)
		allows := 0
		for _, st := range trust["Statement"].([]any) {
			s := st.(map[string]any)
			if s["Effect"] != "Allow" {
				continue
			}
			allows++
			cond, _ := s["Condition"].(map[string]any)
			if len(cond) != 1 || cond["StringEquals"] == nil {
				return fmt.Errorf("I2: role %s trusts with conditions other than StringEquals: %v", name, cond)
			}
			eq := cond["StringEquals"].(map[string]any)
			if principal, _ := s["Principal"].(map[string]any); principal["AWS"] != nil {
				// A target role: only its binding's hop role, with the
				// association's external ID (the hop is the one trust of
				// the ServiceAccount; it is counted there).
				// (While the binding is frozen its association is not
				// corrected, so only the hop is checked then.)
				externalID := w.externalIDs[owner.Name]
				hopARN := "arn:aws:iam::" + testenv.Account + ":role" + rolePath + w.hopName(owner.Name)
				if !current || v.key == "" || owner.Status.Identity != v1alpha1.IdentityEKSPodIdentity ||
					!slices.Equal(testenv.StringOrList(principal["AWS"]), []string{hopARN}) || len(eq) != 1 ||
					!w.frozen(owner) && !slices.Equal(testenv.StringOrList(eq["sts:ExternalId"]), []string{externalID}) {
					return fmt.Errorf("I2: role %s (account %q) trusts %v with %v; its binding %s's hop is %s, its association's external ID %q; the binding's role is %q in account %q (%v)",
						name, v.key, principal["AWS"], eq, owner.Name, hopARN, externalID, owner.Status.RoleName, owner.Status.Account,
						meta.FindStatusCondition(owner.Status.Conditions, v1alpha1.ConditionReady))
				}
				continue
			}
			subs := testenv.StringOrList(eq[sub])
			if subs == nil {
				subs = testenv.StringOrList(eq[sub2])
			}
			if principal, _ := s["Principal"].(map[string]any); principal["Service"] != nil {
				// EKS Pod Identity: the session tags name the ServiceAccount.
				if ns := testenv.StringOrList(eq["aws:RequestTag/kubernetes-namespace"]); len(ns) != 1 || ns[0] != w.ns {
					return fmt.Errorf("I2: role %s trusts Pod Identity sessions of namespaces %v", name, ns)
				}
				subs = nil
				for _, sa := range testenv.StringOrList(eq["aws:RequestTag/kubernetes-service-account"]) {
					subs = append(subs, "system:serviceaccount:"+w.ns+":"+sa)
				}
			}
			if len(subs) != 1 {
				return fmt.Errorf("I2: role %s trusts %d subjects: %v", name, len(subs), eq)
			}
			want := "system:serviceaccount:" + w.ns + ":" + owner.Status.ServiceAccountName
			if !current || subs[0] != want {
				return fmt.Errorf("I2: role %s trusts %s; its binding %s uses role %q with ServiceAccount %q", name, subs[0], owner.Name, owner.Status.RoleName, owner.Status.ServiceAccountName)
			}
			if other, dup := trusted[subs[0]]; dup {
				return fmt.Errorf("I2: %s is trusted by roles %s and %s (across accounts)", subs[0], other, v.key+":"+name)
			}
			trusted[subs[0]] = v.key + ":" + name
		}
		if allows > 1 {
			return fmt.Errorf("I2: role %s has %d Allow statements in its trust", name, allows)
		}

		// I3: permissions within the spec and every guardrail.
		if hop {
			// A hop role may only assume its binding's target role.
			if err := w.checkHopPermissions(v, name, owner); err != nil {
				return err
			}
			continue
		}
		specActions := map[string]bool{}
		for _, st := range owner.Spec.Permissions {
			for _, a := range st.Actions {
				specActions[strings.ToLower(a)] = true
			}
		}
		for _, pn := range v.inlineNames(name) {
			if pn != permsPolicy {
				return fmt.Errorf("I3: role %s has the inline policy %s, which no binding declares", name, pn)
			}
			out, err := v.c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(pn)})
			if err != nil {
				return err
			}
			for _, st := range decoded(out.PolicyDocument)["Statement"].([]any) {
				s := st.(map[string]any)
				if s["Effect"] != "Allow" {
					continue
				}
				res := testenv.StringOrList(s["Resource"])
				for _, a := range testenv.StringOrList(s["Action"]) {
					if !specActions[strings.ToLower(a)] {
						return fmt.Errorf("I3: role %s allows %s, which its binding's spec does not", name, a)
					}
					if forbidden(a, res) {
						return fmt.Errorf("I3: role %s allows %s on %v despite the built-in guardrails", name, a, res)
					}
					if g := w.guard; g != nil {
						for _, d := range g.denied {
							if m, _ := path.Match(strings.ToLower(d), strings.ToLower(a)); m {
								return fmt.Errorf("I3: role %s (account %q) allows %s, denied by the guardrail", name, v.key, a)
							}
						}
						if len(g.allowed) > 0 && !slices.ContainsFunc(g.allowed, func(p string) bool { m, _ := path.Match(strings.ToLower(p), strings.ToLower(a)); return m }) {
							return fmt.Errorf("I3: role %s allows %s, outside the guardrail's allowed actions", name, a)
						}
					}
				}
			}
		}
		attached, err := v.c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
		if err != nil {
			return err // the operator may be deleting it: look again
		}
		for _, ap := range attached.AttachedPolicies {
			arn := aws.ToString(ap.PolicyArn)
			if !slices.Contains(owner.Spec.ManagedPolicyArns, arn) {
				return fmt.Errorf("I3: role %s has %s attached, which its binding's spec does not name", name, arn)
			}
			if w.dangerous[arn] {
				return fmt.Errorf("I3: role %s has %s attached despite the built-in guardrails", name, arn)
			}
		}
	}

	return nil
}

// checkHopPermissions: I3 for a hop role, whose one permission is assuming
// its binding's target role.
func (w *world) checkHopPermissions(v accountView, name string, owner *v1alpha1.PodIdentityBinding) error {
	names := v.inlineNames(name)
	if len(names) != 1 || names[0] != permsPolicy {
		return fmt.Errorf("I3: hop role %s has inline policies %v", name, names)
	}
	out, err := v.c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(permsPolicy)})
	if err != nil {
		return err
	}
	for _, st := range decoded(out.PolicyDocument)["Statement"].([]any) {
		s := st.(map[string]any)
		actions, res := testenv.StringOrList(s["Action"]), testenv.StringOrList(s["Resource"])
		slices.Sort(actions)
		if s["Effect"] == "Allow" && (!slices.Equal(actions, []string{"sts:AssumeRole", "sts:TagSession"}) || !slices.Equal(res, []string{owner.Status.RoleArn})) {
			return fmt.Errorf("I3: hop role %s allows %v on %v; its binding %s's role is %s", name, actions, res, owner.Name, owner.Status.RoleArn)
		}
	}
	attached, err := v.c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		return err
	}
	if len(attached.AttachedPolicies) > 0 {
		return fmt.Errorf("I3: hop role %s has managed policies attached: %v", name, attached.AttachedPolicies)
	}
	return nil
}

// identity picks a mechanism for a binding ("" is the operator's default).
func (w *world) identity() v1alpha1.Identity {
	return []v1alpha1.Identity{"", v1alpha1.IdentityIRSA, v1alpha1.IdentityEKSPodIdentity}[w.pick(3)]
}

// usableBy lists the ServiceAccounts of the namespace (the sequence uses
// sa0-sa2) whose pods could obtain a role with this trust policy, through
// IRSA (a web identity token with the default audience) or EKS Pod Identity
// (EKS's session tags for this cluster), evaluated by testenv.TrustAllows.
func (w *world) usableBy(trust, provider string) []string {
	var out []string
	for i := range 3 {
		sa := fmt.Sprintf("sa%d", i)
		for _, req := range []testenv.TrustRequest{
			{PrincipalType: "Federated", Principal: provider, Actions: []string{"sts:AssumeRoleWithWebIdentity"},
				Context: map[string]string{issuerKey() + ":sub": "system:serviceaccount:" + w.ns + ":" + sa, issuerKey() + ":aud": "sts.amazonaws.com"}},
			{PrincipalType: "Service", Principal: testenv.PodIdentityService, Actions: []string{"sts:AssumeRole", "sts:TagSession"},
				Context: map[string]string{"aws:SourceAccount": testenv.Account, "aws:RequestTag/eks-cluster-arn": eksClusterARN(),
					"aws:RequestTag/eks-cluster-name": clusterName, "aws:RequestTag/kubernetes-namespace": w.ns,
					"aws:RequestTag/kubernetes-service-account": sa}},
		} {
			ok, err := testenv.TrustAllows(trust, req)
			Expect(err).NotTo(HaveOccurred())
			if ok {
				out = append(out, sa)
			}
		}
	}
	return out
}

// eksClusterARN is the suite's EKS cluster, read through the EKS API.
func eksClusterARN() string {
	out, err := eksc.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(clusterName)})
	Expect(err).NotTo(HaveOccurred())
	return aws.ToString(out.Cluster.Arn)
}

// outOfBandAssociation changes an association of the namespace the way
// someone with EKS access would: deletes it, points it at another role, or
// disables its session tags.
func (w *world) outOfBandAssociation() string {
	list, err := eksc.ListPodIdentityAssociations(ctx, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String(clusterName), Namespace: aws.String(w.ns)})
	Expect(err).NotTo(HaveOccurred())
	if len(list.Associations) == 0 {
		return "out-of-band association: none"
	}
	a := list.Associations[w.pick(len(list.Associations))]
	switch w.pick(3) {
	case 0:
		_, err = eksc.DeletePodIdentityAssociation(ctx, &eks.DeletePodIdentityAssociationInput{ClusterName: aws.String(clusterName), AssociationId: a.AssociationId})
		return fmt.Sprintf("out-of-band: delete association %s of %s (err=%v)", aws.ToString(a.AssociationId), aws.ToString(a.ServiceAccount), err)
	case 1:
		other := fmt.Sprintf("arn:aws:iam::%s:role%s%s_foreign-0", testenv.Account, rolePath, w.ns)
		_, err = eksc.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			AssociationId: a.AssociationId, RoleArn: aws.String(other)})
		return fmt.Sprintf("out-of-band: point association of %s at %s (err=%v)", aws.ToString(a.ServiceAccount), other, err)
	default:
		_, err = eksc.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			AssociationId: a.AssociationId, DisableSessionTags: aws.Bool(true)})
		return fmt.Sprintf("out-of-band: disable session tags of the association of %s (err=%v)", aws.ToString(a.ServiceAccount), err)
	}
}

// checkAssociations: I5 for EKS Pod Identity. Every association of the
// namespace is a live Pod Identity binding's, for the ServiceAccount it
// holds, pointing at its current role with session tags enabled, or a
// Retain record with a retained role; and every Ready Pod Identity binding
// has one.
func (w *world) checkAssociations(byName map[string]*v1alpha1.PodIdentityBinding) error {
	have := map[string]bool{}
	for _, a := range w.associations {
		sa, roleARN := aws.ToString(a.ServiceAccount), aws.ToString(a.RoleArn)
		if a.Tags["podidentity.io/retained"] == "true" {
			// A Retain record, outside management (anyone may repoint it).
			// What it can reach is bounded by I2: every managed role's trust
			// lets exactly its own binding's ServiceAccount in.
			continue
		}
		holder := byName[a.Tags["podidentity.io/binding"]]
		if holder == nil || holder.Status.Identity != v1alpha1.IdentityEKSPodIdentity || holder.Status.ServiceAccountName != sa {
			return fmt.Errorf("I5: association %s of %s (tags %v) belongs to no live Pod Identity binding holding it", aws.ToString(a.AssociationId), sa, a.Tags)
		}
		if w.frozen(holder) {
			// Waiting for its account (A2): its association is not
			// corrected meanwhile either.
			have[holder.Name] = true
			continue
		}
		if target := aws.ToString(a.TargetRoleArn); target != "" {
			// Chained: the association's role is the binding's hop role in
			// the operator's account, its target the binding's role.
			if target != holder.Status.RoleArn || holder.Status.Account == "" || !strings.HasPrefix(roleARN, "arn:aws:iam::"+testenv.Account+":") ||
				!slices.ContainsFunc(holder.Status.OwnedRoles, func(o v1alpha1.RoleReference) bool {
					return o.Account == "" && strings.HasSuffix(roleARN, "/"+o.Name)
				}) || aws.ToBool(a.DisableSessionTags) {
				return fmt.Errorf("I5: association of %s points at %s with target %s (session tags disabled: %v); its binding %s has role %s (account %q) and roles %v",
					sa, roleARN, target, aws.ToBool(a.DisableSessionTags), holder.Name, holder.Status.RoleArn, holder.Status.Account, holder.Status.OwnedRoles)
			}
		} else if roleARN != holder.Status.RoleArn || aws.ToBool(a.DisableSessionTags) {
			return fmt.Errorf("I5: association of %s points at %s (session tags disabled: %v); its binding %s has role %s",
				sa, roleARN, aws.ToBool(a.DisableSessionTags), holder.Name, holder.Status.RoleArn)
		}
		have[holder.Name] = true
	}
	for name, b := range byName {
		if b.Status.Identity == v1alpha1.IdentityEKSPodIdentity && meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionReady) && !have[name] {
			return fmt.Errorf("I5: binding %s is Ready with EKS Pod Identity but has no association", name)
		}
	}
	return nil
}

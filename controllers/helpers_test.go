package controllers_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

const (
	timeout  = 30 * time.Second
	interval = 200 * time.Millisecond
)

func flagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

var nsCounter atomic.Int32

// newNamespace creates a fresh namespace for one spec; unique names keep
// specs apart (a deleted namespace takes a while to go).
func newNamespace() string {
	name := fmt.Sprintf("test-%d-%d", GinkgoParallelProcess(), nsCounter.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// newNamespaceWithLabels creates a namespace with labels.
func newNamespaceWithLabels(labels map[string]string) string {
	name := fmt.Sprintf("test-%d-%d", GinkgoParallelProcess(), nsCounter.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})).To(Succeed())
	return name
}

func newBinding(ns, name, sa string) *v1alpha1.PodIdentityBinding {
	return &v1alpha1.PodIdentityBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.PodIdentityBindingSpec{
			ServiceAccountName: sa,
			Permissions: []v1alpha1.PermissionStatement{{
				Actions:   []string{"dynamodb:GetItem", "dynamodb:Query"},
				Resources: []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"},
			}},
		},
	}
}

func getBinding(ns, name string) *v1alpha1.PodIdentityBinding {
	b := &v1alpha1.PodIdentityBinding{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b)).To(Succeed())
	return b
}

// condition returns the binding's condition of a type, or nil.
func condition(ns, name, condType string) *metav1.Condition {
	b := &v1alpha1.PodIdentityBinding{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b); err != nil {
		return nil
	}
	c := meta.FindStatusCondition(b.Status.Conditions, condType)
	if c == nil || c.ObservedGeneration != b.Generation {
		return nil
	}
	return c
}

// readyReason is "True" when Ready is True for the current generation, else
// the reason of the Ready condition.
func readyReason(ns, name string) func() string {
	return func() string {
		c := condition(ns, name, v1alpha1.ConditionReady)
		if c == nil {
			return ""
		}
		if c.Status == metav1.ConditionTrue {
			return "True"
		}
		return c.Reason
	}
}

func waitReady(ns, name string) *v1alpha1.PodIdentityBinding {
	EventuallyWithOffset(1, readyReason(ns, name), timeout, interval).Should(Equal("True"))
	return getBinding(ns, name)
}

func getRole(name string) (*types.Role, error) {
	out, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return nil, err
	}
	return out.Role, nil
}

func roleGone(name string) func() bool {
	return func() bool {
		_, err := getRole(name)
		var nse *types.NoSuchEntityException
		return errors.As(err, &nse)
	}
}

// decoded returns a policy document from IAM as a generic JSON value.
func decoded(doc *string) map[string]any {
	text, err := url.PathUnescape(aws.ToString(doc))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var m map[string]any
	ExpectWithOffset(1, json.Unmarshal([]byte(text), &m)).To(Succeed())
	return m
}

func trustOf(roleName string) map[string]any {
	r, err := getRole(roleName)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return decoded(r.AssumeRolePolicyDocument)
}

func inlinePolicyNames(roleName string) []string {
	out, err := iamc.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(roleName)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out.PolicyNames
}

func attachedPolicies(roleName string) []string {
	out, err := iamc.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(roleName)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var arns []string
	for _, p := range out.AttachedPolicies {
		arns = append(arns, aws.ToString(p.PolicyArn))
	}
	return arns
}

func serviceAccount(ns, name string) (*corev1.ServiceAccount, error) {
	sa := &corev1.ServiceAccount{}
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sa)
	return sa, err
}

func annotation(ns, sa, key string) func() string {
	return func() string {
		s, err := serviceAccount(ns, sa)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return s.Annotations[key]
	}
}

func deleteBinding(ns, name string) {
	b := &v1alpha1.PodIdentityBinding{}
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b)
	if apierrors.IsNotFound(err) {
		return
	}
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, k8s.Delete(ctx, b)).To(Succeed())
	EventuallyWithOffset(1, func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.PodIdentityBinding{}))
	}, timeout, interval).Should(BeTrue())
}

// eventReasons lists the reasons of events about a binding.
func eventReasons(ns, name string) []string {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "PodIdentityBinding" {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func eventNotes(ns, name, reason string) string {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return strings.Join(notes, "\n")
}

// metricSum sums the counter family name the operator exports, over the
// series match accepts (all when nil).
func metricSum(name string, match func(m *dto.Metric) bool) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if match == nil || match(m) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// sumIAMCalls sums the operator's IAM calls whose operation matches, from
// the podidentity_iam_api_calls_total metric it exports.
func sumIAMCalls(match func(operation string) bool) float64 {
	return metricSum("podidentity_iam_api_calls_total", func(m *dto.Metric) bool { return match(labelValue(m, "operation")) })
}

// iamCalls counts the operator's calls of one IAM operation.
func iamCalls(operation string) float64 {
	return sumIAMCalls(func(op string) bool { return op == operation })
}

// waitQuiet waits until count stays the same for window: the operator has
// finished reacting (to a creation, say) before a test starts counting.
func waitQuiet(count func() float64, window time.Duration) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		before := count()
		g.Consistently(count, window, interval).Should(Equal(before))
	}, timeout, interval).Should(Succeed())
}

// iamWrites counts the operator's IAM calls other than reads.
func iamWrites() float64 {
	return sumIAMCalls(func(op string) bool { return !strings.HasPrefix(op, "Get") && !strings.HasPrefix(op, "List") })
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// foreignTrust is a trust policy no binding writes: a role for EC2.
const foreignTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// createForeignRole creates a role outside the operator, as another team would.
func createForeignRole(name string) {
	_, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(foreignTrust)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
}

// tokenClaims are the claims of a ServiceAccount token that IRSA relies on.
type tokenClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud []string `json:"aud"`
	Exp int64    `json:"exp"`
	Iat int64    `json:"iat"`
}

// requestToken asks the API server for a ServiceAccount token, as the kubelet
// does for a projected volume, and decodes its claims.
func requestToken(ns, sa string, audiences []string, expirationSeconds *int64) (string, tokenClaims) {
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: expirationSeconds}}, metav1.CreateOptions{})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	parts := strings.Split(tr.Status.Token, ".")
	ExpectWithOffset(1, parts).To(HaveLen(3))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var claims tokenClaims
	ExpectWithOffset(1, json.Unmarshal(payload, &claims)).To(Succeed())
	return tr.Status.Token, claims
}

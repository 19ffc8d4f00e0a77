package controllers_test

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// association reads the ServiceAccount's EKS pod identity association
// through the EKS API (nil: none).
func association(ns, sa string) *ekstypes.PodIdentityAssociation {
	list, err := eksc.ListPodIdentityAssociations(ctx, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String(clusterName),
		Namespace: aws.String(ns), ServiceAccount: aws.String(sa)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	if len(list.Associations) == 0 {
		return nil
	}
	out, err := eksc.DescribePodIdentityAssociation(ctx, &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
		AssociationId: list.Associations[0].AssociationId})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return out.Association
}

func associationRole(ns, sa string) func() string {
	return func() string {
		if a := association(ns, sa); a != nil {
			return aws.ToString(a.RoleArn)
		}
		return "<none>"
	}
}

// podIdentityCredentials exchanges a token of the ServiceAccount for
// pods.eks.amazonaws.com as EKS's agent does (eks-auth
// AssumeRoleForPodIdentity); it returns the HTTP status and the assumed
// role's ARN.
func podIdentityCredentials(ns, sa string) (int, string) {
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{testenv.PodIdentityAudience}}}, metav1.CreateOptions{})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	body, _ := json.Marshal(map[string]string{"token": tr.Status.Token})
	resp, err := http.Post(eksEmu.URL+"/clusters/"+clusterName+"/assume-role-for-pod-identity", "application/json", bytes.NewReader(body))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var out struct {
		AssumedRoleUser struct{ Arn string } `json:"assumedRoleUser"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.AssumedRoleUser.Arn
}

func podIdentityBinding(ns, name, sa string) *v1alpha1.PodIdentityBinding {
	b := newBinding(ns, name, sa)
	b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	return b
}

var _ = Describe("EKS Pod Identity bindings", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("get an exact-trust role and an owned association: only the ServiceAccount's pods obtain the role", func() {
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Expect(b.Status.Identity).To(Equal(v1alpha1.IdentityEKSPodIdentity))

		By("the association, read through the EKS API")
		a := association(ns, "app")
		Expect(a).NotTo(BeNil())
		Expect(aws.ToString(a.RoleArn)).To(Equal(b.Status.RoleArn))
		Expect(aws.ToString(a.AssociationId)).To(Equal(b.Status.AssociationID))
		Expect(aws.ToBool(a.DisableSessionTags)).To(BeFalse())
		Expect(a.Tags).To(Equal(map[string]string{"podidentity.io/cluster": clusterName, "podidentity.io/namespace": ns, "podidentity.io/binding": "app"}))

		By("the role trusts EKS's service principal, not the OIDC provider")
		trust := trustOf(b.Status.RoleName)
		Expect(trust["Statement"]).To(HaveLen(1))
		st := trust["Statement"].([]any)[0].(map[string]any)
		Expect(testenv.StringOrList(st["Principal"].(map[string]any)["Service"])).To(Equal([]string{"pods.eks.amazonaws.com"}))
		Expect(st["Principal"]).NotTo(HaveKey("Federated"))

		By("the ServiceAccount exists without an IRSA annotation")
		sa, err := serviceAccount(ns, "app")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.Annotations).NotTo(HaveKey("eks.amazonaws.com/role-arn"))

		By("a token of the ServiceAccount becomes credentials of the role; another ServiceAccount's association to the same role is refused by the trust")
		status, assumed := podIdentityCredentials(ns, "app")
		Expect(status).To(Equal(http.StatusOK))
		Expect(assumed).To(ContainSubstring(":assumed-role/" + b.Status.RoleName + "/"))
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "intruder"}})).To(Succeed())
		_, err = eksc.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			Namespace: aws.String(ns), ServiceAccount: aws.String("intruder"), RoleArn: aws.String(b.Status.RoleArn)})
		Expect(err).NotTo(HaveOccurred())
		status, _ = podIdentityCredentials(ns, "intruder")
		Expect(status).To(Equal(http.StatusForbidden))

		By("deleting the binding deletes its association and role, not the intruder's association")
		deleteBinding(ns, "app")
		Expect(association(ns, "app")).To(BeNil())
		Expect(roleGone(b.Status.RoleName)()).To(BeTrue())
		Expect(association(ns, "intruder")).NotTo(BeNil())
	})

	It("corrects association drift: deleted, pointed at another role, session tags disabled", func() {
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		first := b.Status.AssociationID

		By("deleted out of band: re-created")
		_, err := eksc.DeletePodIdentityAssociation(ctx, &eks.DeletePodIdentityAssociationInput{ClusterName: aws.String(clusterName), AssociationId: aws.String(first)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(associationRole(ns, "app"), timeout, interval).Should(Equal(b.Status.RoleArn))
		Eventually(func() string { return getBinding(ns, "app").Status.AssociationID }, timeout, interval).ShouldNot(Equal(first))

		By("pointed at another role and session tags disabled out of band: restored")
		a := association(ns, "app")
		_, err = eksc.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			AssociationId: a.AssociationId, RoleArn: aws.String("arn:aws:iam::" + testenv.Account + ":role/elsewhere"), DisableSessionTags: aws.Bool(true)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool {
			a := association(ns, "app")
			return aws.ToString(a.RoleArn) == b.Status.RoleArn && !aws.ToBool(a.DisableSessionTags)
		}, timeout, interval).Should(BeTrue())
		Eventually(func() []string { return eventReasons(ns, "app") }, timeout, interval).Should(ContainElement("DriftCorrected"))
		deleteBinding(ns, "app")
	})

	It("never overwrites an association it does not own (AssociationConflict), and takes over once it is gone", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		foreign, err := eksc.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			Namespace: aws.String(ns), ServiceAccount: aws.String("app"), RoleArn: aws.String("arn:aws:iam::" + testenv.Account + ":role/theirs")})
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "app", "app"))).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonAssociationConflict))
		Consistently(associationRole(ns, "app"), syncPeriod, interval).Should(HaveSuffix(":role/theirs"))
		Expect(roleGone(roleNameFor(ns, "app"))()).To(BeTrue(), "no role trusts a ServiceAccount the binding cannot hold")

		By("the other association goes: the binding creates its own")
		_, err = eksc.DeletePodIdentityAssociation(ctx, &eks.DeletePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			AssociationId: foreign.Association.AssociationId})
		Expect(err).NotTo(HaveOccurred())
		b := waitReady(ns, "app")
		Expect(associationRole(ns, "app")()).To(Equal(b.Status.RoleArn))
		deleteBinding(ns, "app")
	})

	It("with deletionPolicy Retain keeps the association, tagged, with the role", func() {
		b := podIdentityBinding(ns, "app", "app")
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "app")
		deleteBinding(ns, "app")
		a := association(ns, "app")
		Expect(a).NotTo(BeNil())
		Expect(aws.ToString(a.RoleArn)).To(Equal(b.Status.RoleArn))
		Expect(a.Tags).To(HaveKeyWithValue("podidentity.io/retained", "true"))
		status, _ := podIdentityCredentials(ns, "app")
		Expect(status).To(Equal(http.StatusOK), "pods keep working after a Retain deletion")
	})

	It("switches a live binding from IRSA to Pod Identity and back, setting up the new mechanism before releasing the old", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Expect(b.Status.Identity).To(Equal(v1alpha1.IdentityIRSA))
		Expect(annotation(ns, "app", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))

		b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() v1alpha1.Identity { return getBinding(ns, "app").Status.Identity }, timeout, interval).Should(Equal(v1alpha1.IdentityEKSPodIdentity))
		b = waitReady(ns, "app")
		Expect(associationRole(ns, "app")()).To(Equal(b.Status.RoleArn))
		Expect(annotation(ns, "app", "eks.amazonaws.com/role-arn")()).To(BeEmpty())
		status, _ := podIdentityCredentials(ns, "app")
		Expect(status).To(Equal(http.StatusOK))

		b.Spec.Identity = v1alpha1.IdentityIRSA
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(annotation(ns, "app", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b.Status.RoleArn))
		Eventually(associationRole(ns, "app"), timeout, interval).Should(Equal("<none>"))
		b = waitReady(ns, "app")
		Expect(b.Status.Identity).To(Equal(v1alpha1.IdentityIRSA))
		Expect(b.Status.AssociationID).To(BeEmpty())
		st := trustOf(b.Status.RoleName)["Statement"].([]any)[0].(map[string]any)
		Expect(st["Principal"]).To(HaveKey("Federated"))
		deleteBinding(ns, "app")
	})

	It("a guardrail's allowedIdentities: admission refuses another mechanism, and past admission nothing is bound with it", func() {
		key := "irsa-only-" + ns
		Expect(k8s.Create(ctx, guardrail(key, map[string]string{"pi-guard": key},
			v1alpha1.PodIdentityGuardrailSpec{AllowedIdentities: []v1alpha1.Identity{v1alpha1.IdentityIRSA}}))).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: key}}))).To(Succeed())
		})
		admitted := newNamespaceWithLabels(map[string]string{"pi-guard": key})
		Eventually(func() error { return k8s.Create(ctx, podIdentityBinding(admitted, "app", "app")) }, timeout, interval).Should(
			MatchError(ContainSubstring("EKSPodIdentity is not allowed")))

		bypassed := newNamespaceWithLabels(map[string]string{"pi-guard": key, bypassWebhookLabel: "true"})
		By("a new binding asking for Pod Identity gets nothing")
		Expect(k8s.Create(ctx, podIdentityBinding(bypassed, "new", "new"))).To(Succeed())
		Eventually(readyReason(bypassed, "new"), timeout, interval).Should(Equal(v1alpha1.ReasonGuardrailViolation))
		Expect(association(bypassed, "new")).To(BeNil())
		Expect(getBinding(bypassed, "new").Status.RoleName).To(BeEmpty())

		By("an IRSA binding switched to Pod Identity stays IRSA")
		Expect(k8s.Create(ctx, newBinding(bypassed, "kept", "kept"))).To(Succeed())
		b := waitReady(bypassed, "kept")
		b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(bypassed, "kept"), timeout, interval).Should(Equal(v1alpha1.ReasonGuardrailViolation))
		Consistently(func() v1alpha1.Identity { return getBinding(bypassed, "kept").Status.Identity }, syncPeriod, interval).Should(Equal(v1alpha1.IdentityIRSA))
		Expect(association(bypassed, "kept")).To(BeNil())
		Expect(annotation(bypassed, "kept", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))
		deleteBinding(bypassed, "new")
		deleteBinding(bypassed, "kept")
	})

	It("an EKS outage: Pod Identity bindings report EKSUnavailable and converge once EKS is back; IRSA bindings go on; throttling is retried", func() {
		eksEmu.SetDown(true)
		DeferCleanup(func() { eksEmu.SetDown(false) })
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "app", "app"))).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonEKSUnavailable))
		Expect(k8s.Create(ctx, newBinding(ns, "irsa", "irsa"))).To(Succeed())
		waitReady(ns, "irsa")

		eksEmu.SetDown(false)
		b := waitReady(ns, "app")
		Expect(associationRole(ns, "app")()).To(Equal(b.Status.RoleArn))

		eksEmu.Throttle(3)
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "later", "later"))).To(Succeed())
		later := waitReady(ns, "later")
		Expect(associationRole(ns, "later")()).To(Equal(later.Status.RoleArn))
		for _, n := range []string{"app", "irsa", "later"} {
			deleteBinding(ns, n)
		}
	})

	It("reports pods started before the association as stale and restarts their Deployment with Rollout", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		deployment(ns, "web", "app", 1) // created before any association: EKS injected nothing
		b := podIdentityBinding(ns, "app", "app")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "app")
		Eventually(func() string {
			c := condition(ns, "app", v1alpha1.ConditionPodsCurrent)
			if c == nil {
				return ""
			}
			return c.Reason
		}, timeout, interval).Should(Equal(v1alpha1.ReasonStalePods))
		Eventually(templateAnnotations(ns, "web"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", b.Status.RoleArn))

		By("a pod EKS's webhook injected counts as current")
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "injected"}, Spec: corev1.PodSpec{ServiceAccountName: "app",
			Containers: []corev1.Container{{Name: "app", Image: "app:1", Env: []corev1.EnvVar{
				{Name: "AWS_CONTAINER_CREDENTIALS_FULL_URI", Value: "http://169.254.170.23/v1/credentials"},
				{Name: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Value: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"}}}},
			Volumes: []corev1.Volume{{Name: "eks-pod-identity-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "pods.eks.amazonaws.com", Path: "eks-pod-identity-token"}}}}}}}}}
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func() int32 {
			if c := getBinding(ns, "app").Status.Pods; c != nil {
				return c.Current
			}
			return -1
		}, timeout, interval).Should(Equal(int32(1)))
		deleteBinding(ns, "app")
	})
})

package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func startEKS(t *testing.T) (*EKS, *eks.Client, aws.Config) {
	t.Helper()
	if os.Getenv("MOTO_SERVER") == "" {
		t.Skip("MOTO_SERVER is not set (make test sets it)")
	}
	moto, err := StartMoto()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	e, err := StartEKS(moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	cfg.BaseEndpoint = aws.String(moto.URL)
	c := eks.NewFromConfig(cfg, func(o *eks.Options) { o.BaseEndpoint = aws.String(e.URL) })
	if _, err := c.CreateCluster(context.Background(), &eks.CreateClusterInput{Name: aws.String("prod"),
		RoleArn:            aws.String("arn:aws:iam::" + Account + ":role/eks-cluster"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-00000001"}}}); err != nil {
		t.Fatalf("CreateCluster through the emulator (to moto): %v", err)
	}
	return e, c, cfg
}

// The association API as aws-sdk-go-v2/service/eks sees it: errors as typed
// exceptions, uniqueness, idempotency, pagination, tags.
func TestEKSAssociationAPI(t *testing.T) {
	e, c, _ := startEKS(t)
	ctx := context.Background()
	role := "arn:aws:iam::" + Account + ":role/app"

	_, err := c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("staging"),
		Namespace: aws.String("team"), ServiceAccount: aws.String("app"), RoleArn: aws.String(role)})
	var notFound *ekstypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("unknown cluster: %v, want ResourceNotFoundException", err)
	}
	created, err := c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
		Namespace: aws.String("team"), ServiceAccount: aws.String("app"), RoleArn: aws.String(role),
		ClientRequestToken: aws.String("once"), Tags: map[string]string{"podidentity.io/binding": "app"}})
	if err != nil {
		t.Fatal(err)
	}
	a := created.Association
	if aws.ToString(a.RoleArn) != role || aws.ToString(a.Namespace) != "team" || a.CreatedAt == nil ||
		aws.ToBool(a.DisableSessionTags) || a.Tags["podidentity.io/binding"] != "app" ||
		aws.ToString(a.AssociationArn) != "arn:aws:eks:us-east-1:"+Account+":podidentityassociation/prod/"+aws.ToString(a.AssociationId) {
		t.Errorf("created %+v", a)
	}
	again, err := c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
		Namespace: aws.String("team"), ServiceAccount: aws.String("app"), RoleArn: aws.String(role), ClientRequestToken: aws.String("once")})
	if err != nil || aws.ToString(again.Association.AssociationId) != aws.ToString(a.AssociationId) {
		t.Errorf("a retried create (same clientRequestToken) gave %v %v", again, err)
	}
	_, err = c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
		Namespace: aws.String("team"), ServiceAccount: aws.String("app"), RoleArn: aws.String(role)})
	var inUse *ekstypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Errorf("a second association for team/app: %v, want ResourceInUseException", err)
	}

	for i := range 5 {
		if _, err := c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
			Namespace: aws.String(fmt.Sprintf("ns-%d", i%2)), ServiceAccount: aws.String(fmt.Sprintf("sa-%d", i)), RoleArn: aws.String(role)}); err != nil {
			t.Fatal(err)
		}
	}
	e.PageSize = 2
	list := func(in *eks.ListPodIdentityAssociationsInput) []string {
		var ids []string
		for p := eks.NewListPodIdentityAssociationsPaginator(c, in); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Associations) > 2 {
				t.Errorf("a page of %d associations with PageSize 2", len(page.Associations))
			}
			for _, s := range page.Associations {
				ids = append(ids, aws.ToString(s.AssociationId))
			}
		}
		return ids
	}
	before := e.Calls()["ListPodIdentityAssociations"]
	if all := list(&eks.ListPodIdentityAssociationsInput{ClusterName: aws.String("prod")}); len(all) != 6 {
		t.Errorf("listed %v, want 6 associations", all)
	}
	if pages := e.Calls()["ListPodIdentityAssociations"] - before; pages != 3 {
		t.Errorf("%d pages for 6 associations of 2 per page", pages)
	}
	if ns0 := list(&eks.ListPodIdentityAssociationsInput{ClusterName: aws.String("prod"), Namespace: aws.String("ns-0")}); len(ns0) != 3 {
		t.Errorf("namespace ns-0: %v, want 3", ns0)
	}
	if one := list(&eks.ListPodIdentityAssociationsInput{ClusterName: aws.String("prod"), Namespace: aws.String("team"),
		ServiceAccount: aws.String("app")}); len(one) != 1 || one[0] != aws.ToString(a.AssociationId) {
		t.Errorf("team/app: %v", one)
	}

	upd, err := c.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
		AssociationId: a.AssociationId, RoleArn: aws.String(role + "-2"), DisableSessionTags: aws.Bool(true)})
	if err != nil || aws.ToString(upd.Association.RoleArn) != role+"-2" || !aws.ToBool(upd.Association.DisableSessionTags) {
		t.Errorf("update: %+v %v", upd, err)
	}
	if _, err := c.TagResource(ctx, &eks.TagResourceInput{ResourceArn: a.AssociationArn, Tags: map[string]string{"team": "payments"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &eks.UntagResourceInput{ResourceArn: a.AssociationArn, TagKeys: []string{"podidentity.io/binding"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &eks.ListTagsForResourceInput{ResourceArn: a.AssociationArn})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["team"] != "payments" {
		t.Errorf("tags %v %v", tags, err)
	}
	if _, err := c.DeletePodIdentityAssociation(ctx, &eks.DeletePodIdentityAssociationInput{ClusterName: aws.String("prod"), AssociationId: a.AssociationId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribePodIdentityAssociation(ctx, &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String("prod"), AssociationId: a.AssociationId})
	if !errors.As(err, &notFound) {
		t.Errorf("describe after delete: %v, want ResourceNotFoundException", err)
	}
	if d, err := c.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("prod")}); err != nil || d.Cluster.Identity == nil {
		t.Errorf("DescribeCluster (moto, through the emulator): %v %v", d, err)
	}
}

// AssumeRoleForPodIdentity: a ServiceAccount token for pods.eks.amazonaws.com
// becomes credentials of the association's role only if the role's trust
// allows EKS's service principal with the session tags EKS sends.
func TestEKSAssumeRoleForPodIdentity(t *testing.T) {
	e, c, cfg := startEKS(t)
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set")
	}
	env := &envtest.Environment{}
	restCfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kube := kubernetes.NewForConfigOrDie(restCfg)
	e.Kube = kube
	ctx := context.Background()

	iamc := iam.NewFromConfig(cfg)
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},` +
		`"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:SourceAccount":"` + Account + `",` +
		`"aws:RequestTag/eks-cluster-name":"prod","aws:RequestTag/kubernetes-namespace":"team","aws:RequestTag/kubernetes-service-account":"app"}}}]}`
	r, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("app"), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"team"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"app", "other"} {
		if _, err := kube.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
			Namespace: aws.String("team"), ServiceAccount: aws.String(sa), RoleArn: r.Role.Arn}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa, audience string) string {
		tr, err := kube.CoreV1().ServiceAccounts("team").CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	exchange := func(tok string) (int, map[string]any) {
		body, _ := json.Marshal(map[string]string{"token": tok})
		resp, err := http.Post(e.URL+"/clusters/prod/assume-role-for-pod-identity", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	status, out := exchange(token("app", PodIdentityAudience))
	if status != http.StatusOK {
		t.Fatalf("the association's own ServiceAccount: %d %v", status, out)
	}
	creds := out["credentials"].(map[string]any)
	who, err := sts.NewFromConfig(cfg, func(o *sts.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(creds["accessKeyId"].(string), creds["secretAccessKey"].(string), creds["sessionToken"].(string))
	}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !bytes.Contains([]byte(aws.ToString(who.Arn)), []byte(":assumed-role/app/")) {
		t.Errorf("caller identity with the credentials: %v %v", who, err)
	}
	if status, out := exchange(token("other", PodIdentityAudience)); status != http.StatusForbidden {
		t.Errorf("another ServiceAccount's association to the same role: %d %v, want 403 (the trust names app)", status, out)
	}
	if status, out := exchange(token("app", "sts.amazonaws.com")); status != http.StatusUnauthorized {
		t.Errorf("a token for another audience: %d %v, want 401", status, out)
	}
	list, err := c.ListPodIdentityAssociations(ctx, &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String("prod"),
		Namespace: aws.String("team"), ServiceAccount: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String("prod"),
		AssociationId: list.Associations[0].AssociationId, DisableSessionTags: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if status, out := exchange(token("app", PodIdentityAudience)); status != http.StatusForbidden {
		t.Errorf("session tags disabled out of band: %d %v, want 403 (the trust requires them)", status, out)
	}
}

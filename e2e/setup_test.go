// Package e2e_test runs what the README tells a user to run, as written:
// the AWS CLI setup against moto, each install path's commands against a
// real API server, and then the operator binary with the arguments, the
// RBAC and the IAM role that path gives it.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// tools is a directory on PATH with the commands the README uses: aws (the
// AWS CLI from PyPI, hack/awscli.sh), helm (hack/helm.sh) and kubectl
// (envtest's), each under the name a user types.
func tools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, env := range map[string]string{"aws": "AWS_CLI", "helm": "HELM"} {
		bin := os.Getenv(env)
		if bin == "" {
			t.Fatalf("%s is not set: run through `make test`", env)
		}
		if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through `make test`")
	}
	if err := os.Symlink(filepath.Join(assets, "kubectl"), filepath.Join(dir, "kubectl")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// block is the docs' fenced code block that starts with firstLine; the
// test fails when the docs no longer have it.
func block(t *testing.T, doc, lang, firstLine string) string {
	t.Helper()
	b := testenv.FencedBlock(doc, lang, firstLine)
	if b == "" {
		t.Fatalf("the docs have no ```%s block starting with %q", lang, firstLine)
	}
	return b
}

// substitute replaces a doc example's values with a user's; the test fails
// when the example no longer has one of them.
func substitute(t *testing.T, what, example string, values map[string]string) string {
	t.Helper()
	for from, to := range values {
		if !strings.Contains(example, from) {
			t.Fatalf("%s no longer has %q", what, from)
		}
		example = strings.ReplaceAll(example, from, to)
	}
	return example
}

// shell runs scripts with bash -euo pipefail in the repository root, as a
// user's terminal in a checkout: the commands on PATH, the AWS CLI pointed
// at moto, and the given variables.
type shell struct {
	root, path string
	env        []string
}

func (s shell) run(t *testing.T, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = s.root
	cmd.Env = append(append(append(os.Environ(), "PATH="+s.path+":"+os.Getenv("PATH")), s.env...), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n--- script\n%s--- stdout\n%s--- stderr\n%s", err, script, out.String(), errOut.String())
	}
	return out.String()
}

// setup is what the README's IAM setup leaves a user with.
type setup struct {
	Cluster, Issuer, BoundaryARN, OperatorRoleARN string
}

func (s setup) env() []string {
	return []string{"CLUSTER=" + s.Cluster, "ISSUER=" + s.Issuer, "BOUNDARY_ARN=" + s.BoundaryARN, "OPERATOR_ROLE_ARN=" + s.OperatorRoleARN}
}

// runSetup runs an issuer block and the shared IAM block as one script and
// returns the variables the install commands use.
func runSetup(t *testing.T, sh shell, issuerBlock, iamBlock string) setup {
	t.Helper()
	out := sh.run(t, issuerBlock+iamBlock+`printf '%s\n' "$CLUSTER" "$ISSUER" "$BOUNDARY_ARN" "$OPERATOR_ROLE_ARN"`+"\n")
	v := strings.Split(strings.TrimSpace(out), "\n")
	v = v[len(v)-4:]
	return setup{Cluster: v[0], Issuer: v[1], BoundaryARN: v[2], OperatorRoleARN: v[3]}
}

func iamClient(t *testing.T, endpoint string) *iam.Client {
	t.Helper()
	return iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
}

// claims are the parts of a service-account token IAM's web identity
// federation reads.
type claims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud any    `json:"aud"`
}

func tokenClaims(t *testing.T, jwt string) claims {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// trustAllows evaluates a role's trust policy (as IAM returns it) for
// AssumeRoleWithWebIdentity with a token, with testenv.TrustAllows: the
// provider of the token's issuer as the Federated principal, its sub and
// (single) aud as the condition keys. moto does not evaluate trust, so the
// test does.
func trustAllows(t *testing.T, trust, account string, tok claims) bool {
	t.Helper()
	provider := strings.TrimPrefix(tok.Iss, "https://")
	aud := testenv.StringOrList(tok.Aud)
	if len(aud) != 1 {
		t.Fatalf("the token has audiences %v; the evaluation takes one", aud)
	}
	ok, err := testenv.TrustAllows(trust, testenv.TrustRequest{PrincipalType: "Federated",
		Principal: fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, provider), Actions: []string{"sts:AssumeRoleWithWebIdentity"},
		Context: map[string]string{provider + ":sub": tok.Sub, provider + ":aud": aud[0]}})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// checkIAMSetup reads back through the SDK what the README's setup
// created: the provider for the issuer with the sts.amazonaws.com client,
// the boundary policy, and the operator's role with its permission policy
// and the boundary the policy demands.
func checkIAMSetup(t *testing.T, c *iam.Client, s setup) {
	t.Helper()
	ctx := context.Background()
	providerARN := fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", testenv.Account, strings.TrimPrefix(s.Issuer, "https://"))
	p, err := c.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &providerARN})
	if err != nil {
		t.Fatalf("the setup registered no provider %s: %v", providerARN, err)
	}
	if !slices.Contains(p.ClientIDList, "sts.amazonaws.com") {
		t.Errorf("provider client IDs %v lack sts.amazonaws.com", p.ClientIDList)
	}
	if _, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: &s.BoundaryARN}); err != nil {
		t.Errorf("boundary policy %s: %v", s.BoundaryARN, err)
	}
	name := s.OperatorRoleARN[strings.LastIndex(s.OperatorRoleARN, "/")+1:]
	pol, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &name, PolicyName: aws.String("podidentity-operator")})
	if err != nil {
		t.Fatalf("the operator's role policy: %v", err)
	}
	raw, _ := url.QueryUnescape(aws.ToString(pol.PolicyDocument))
	// Every placeholder filled in, with the setup's boundary and cluster.
	if strings.Contains(raw, "${") {
		t.Errorf("the operator's policy keeps a placeholder: %s", raw)
	}
	for _, want := range []string{s.BoundaryARN, `"` + s.Cluster + `"`} {
		if !strings.Contains(raw, want) {
			t.Errorf("the operator's policy lacks %s: %s", want, raw)
		}
	}
}

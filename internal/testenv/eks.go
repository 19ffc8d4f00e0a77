package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodIdentityAudience is the audience of the tokens EKS Pod Identity takes.
const PodIdentityAudience = "pods.eks.amazonaws.com"

// PodIdentityService is the service principal EKS Pod Identity assumes roles as.
const PodIdentityService = "pods.eks.amazonaws.com"

// EKS emulates what moto lacks of EKS Pod Identity, on the real wire
// protocols, so that aws-sdk-go-v2/service/eks talks to it unchanged
// (AWS_ENDPOINT_URL_EKS or BaseEndpoint):
//
//   - the pod identity association API (REST-JSON: Create, Describe,
//     Update, Delete and ListPodIdentityAssociations, and TagResource,
//     UntagResource and ListTagsForResource on association ARNs), with what
//     AWS documents: one association per cluster, namespace and
//     ServiceAccount (ResourceInUseException), unknown clusters and IDs
//     (ResourceNotFoundException), nextToken pagination, tags;
//   - eks-auth's AssumeRoleForPodIdentity (POST
//     /clusters/{name}/assume-role-for-pod-identity with {"token": ...}): the
//     ServiceAccount token is checked with a TokenReview for the audience
//     pods.eks.amazonaws.com, the association found, the role's trust
//     policy evaluated for the service principal pods.eks.amazonaws.com with
//     the session tags EKS sends (moto does not evaluate trust), and moto's
//     sts:AssumeRole called with those tags.
//
// Every other EKS request (CreateCluster, DescribeCluster, ...) goes to
// moto, which also decides which clusters exist.
type EKS struct {
	URL string
	// PageSize caps every ListPodIdentityAssociations page (0: AWS's 100),
	// so that tests exercise nextToken with few associations.
	PageSize int
	// Kube reviews tokens for AssumeRoleForPodIdentity (nil: refused).
	Kube kubernetes.Interface

	moto     string
	proxy    *httputil.ReverseProxy
	srv      *http.Server
	iam      *iam.Client
	sts      *sts.Client
	mu       sync.Mutex
	down     bool
	throttle int
	byID     map[string]*association
	requests map[string]string // clientRequestToken -> association ID
	calls    map[string]int
}

type association struct {
	ClusterName        string            `json:"clusterName"`
	Namespace          string            `json:"namespace"`
	ServiceAccount     string            `json:"serviceAccount"`
	RoleArn            string            `json:"roleArn"`
	AssociationArn     string            `json:"associationArn"`
	AssociationID      string            `json:"associationId"`
	Tags               map[string]string `json:"tags"`
	CreatedAt          float64           `json:"createdAt"`
	ModifiedAt         float64           `json:"modifiedAt"`
	DisableSessionTags bool              `json:"disableSessionTags"`
	TargetRoleArn      string            `json:"targetRoleArn,omitempty"`
	ExternalID         string            `json:"externalId,omitempty"`
	Policy             string            `json:"policy,omitempty"`
	clusterArn         string
}

// StartEKS serves the emulator on a free loopback port, in front of moto.
func StartEKS(motoURL string) (*EKS, error) {
	target, err := url.Parse(motoURL)
	if err != nil {
		return nil, err
	}
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	e := &EKS{moto: motoURL, proxy: httputil.NewSingleHostReverseProxy(target), byID: map[string]*association{},
		requests: map[string]string{}, calls: map[string]int{},
		iam: iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(motoURL) }),
		sts: sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(motoURL) }),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.URL = "http://" + l.Addr().String()
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(l) }()
	return e, nil
}

// Stop stops the emulator.
func (e *EKS) Stop() { _ = e.srv.Close() }

// SetDown makes every association and eks-auth call fail with a 503 (an
// EKS outage) until it is set back.
func (e *EKS) SetDown(down bool) {
	e.mu.Lock()
	e.down = down
	e.mu.Unlock()
}

// Throttle makes the next n association calls fail with
// ThrottlingException (429).
func (e *EKS) Throttle(n int) {
	e.mu.Lock()
	e.throttle = n
	e.mu.Unlock()
}

// fault writes the injected failure of this call, if any.
func (e *EKS) fault(w http.ResponseWriter) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.down:
		eksError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "the service is unavailable (injected)")
		return true
	case e.throttle > 0:
		e.throttle--
		eksError(w, http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded (injected)")
		return true
	}
	return false
}

// Calls is how many times each operation was called.
func (e *EKS) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.calls {
		out[k] = v
	}
	return out
}

var (
	assocPath  = regexp.MustCompile(`^/clusters/([^/]+)/pod-identity-associations(?:/([^/]+))?$`)
	assumePath = regexp.MustCompile(`^/clusters/([^/]+)/assume-role-for-pod-identity$`)
	tagsPath   = regexp.MustCompile(`^/tags/(.+)$`)
)

func (e *EKS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if (assocPath.MatchString(p) || assumePath.MatchString(p) || tagsPath.MatchString(p) && strings.Contains(p, "podidentityassociation")) && e.fault(w) {
		return
	}
	if m := assocPath.FindStringSubmatch(p); m != nil {
		cluster, _ := url.PathUnescape(m[1])
		id, _ := url.PathUnescape(m[2])
		switch {
		case id == "" && r.Method == http.MethodPost:
			e.count("CreatePodIdentityAssociation")
			e.create(w, r, cluster)
		case id == "" && r.Method == http.MethodGet:
			e.count("ListPodIdentityAssociations")
			e.list(w, r, cluster)
		case r.Method == http.MethodGet:
			e.count("DescribePodIdentityAssociation")
			e.describe(w, cluster, id)
		case r.Method == http.MethodPost:
			e.count("UpdatePodIdentityAssociation")
			e.update(w, r, cluster, id)
		case r.Method == http.MethodDelete:
			e.count("DeletePodIdentityAssociation")
			e.delete(w, cluster, id)
		default:
			eksError(w, http.StatusMethodNotAllowed, "InvalidRequestException", "unsupported method")
		}
		return
	}
	if m := assumePath.FindStringSubmatch(p); m != nil && r.Method == http.MethodPost {
		cluster, _ := url.PathUnescape(m[1])
		e.count("AssumeRoleForPodIdentity")
		e.assume(w, r, cluster)
		return
	}
	if m := tagsPath.FindStringSubmatch(p); m != nil {
		arn, _ := url.PathUnescape(m[1])
		if strings.Contains(arn, ":podidentityassociation/") {
			e.tags(w, r, arn)
			return
		}
	}
	e.proxy.ServeHTTP(w, r)
}

func (e *EKS) count(op string) {
	e.mu.Lock()
	e.calls[op]++
	e.mu.Unlock()
}

// eksError writes an error as the REST-JSON protocol does.
func eksError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// cluster asks moto for the cluster (its ARN), with the caller's
// credentials; "" when it does not exist.
func (e *EKS) cluster(r *http.Request, name string) (string, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, e.moto+"/clusters/"+url.PathEscape(name), nil)
	if err != nil {
		return "", err
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	var out struct {
		Cluster struct {
			Arn string `json:"arn"`
		} `json:"cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Cluster.Arn == "" {
		return "", fmt.Errorf("moto DescribeCluster %s: %d %v", name, resp.StatusCode, err)
	}
	return out.Cluster.Arn, nil
}

// requireCluster is the cluster's ARN, or false after writing the error
// EKS answers for a cluster that does not exist.
func (e *EKS) requireCluster(w http.ResponseWriter, r *http.Request, cluster string) (string, bool) {
	clusterArn, err := e.cluster(r, cluster)
	if err != nil {
		eksError(w, http.StatusInternalServerError, "ServerException", err.Error())
		return "", false
	}
	if clusterArn == "" {
		eksError(w, http.StatusNotFound, "ResourceNotFoundException", "No cluster found for name: "+cluster+".")
		return "", false
	}
	return clusterArn, true
}

var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$`)

func (e *EKS) create(w http.ResponseWriter, r *http.Request, cluster string) {
	var in struct {
		Namespace, ServiceAccount, RoleArn, ClientRequestToken, TargetRoleArn, Policy string
		Tags                                                                          map[string]string
		DisableSessionTags                                                            *bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		eksError(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	if in.Namespace == "" || in.ServiceAccount == "" || !roleARN.MatchString(in.RoleArn) {
		eksError(w, http.StatusBadRequest, "InvalidParameterException", "namespace, serviceAccount and a role ARN are required")
		return
	}
	clusterArn, ok := e.requireCluster(w, r, cluster)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if id, ok := e.requests[in.ClientRequestToken]; ok && in.ClientRequestToken != "" {
		if a := e.byID[id]; a != nil {
			writeJSON(w, map[string]any{"association": a})
			return
		}
	}
	for _, a := range e.byID {
		if a.ClusterName == cluster && a.Namespace == in.Namespace && a.ServiceAccount == in.ServiceAccount {
			eksError(w, http.StatusConflict, "ResourceInUseException",
				fmt.Sprintf("Association already exists: %s for namespace %s and service account %s", a.AssociationID, in.Namespace, in.ServiceAccount))
			return
		}
	}
	id := "a-" + randomString(17)
	now := float64(time.Now().Unix())
	a := &association{ClusterName: cluster, Namespace: in.Namespace, ServiceAccount: in.ServiceAccount, RoleArn: in.RoleArn,
		AssociationID: id, Tags: in.Tags, CreatedAt: now, ModifiedAt: now, TargetRoleArn: in.TargetRoleArn, Policy: in.Policy,
		AssociationArn: strings.Replace(clusterArn, ":cluster/", ":podidentityassociation/", 1) + "/" + id, clusterArn: clusterArn}
	if a.Tags == nil {
		a.Tags = map[string]string{}
	}
	if in.DisableSessionTags != nil {
		a.DisableSessionTags = *in.DisableSessionTags
	}
	if a.TargetRoleArn != "" {
		a.ExternalID = randomString(36)
	}
	e.byID[id] = a
	if in.ClientRequestToken != "" {
		e.requests[in.ClientRequestToken] = id
	}
	writeJSON(w, map[string]any{"association": a})
}

// get returns the association of that cluster and ID, or writes the error.
func (e *EKS) get(w http.ResponseWriter, cluster, id string) *association {
	a := e.byID[id]
	if a == nil || a.ClusterName != cluster {
		eksError(w, http.StatusNotFound, "ResourceNotFoundException", "No Pod Identity Association found for id: "+id+".")
		return nil
	}
	return a
}

func (e *EKS) describe(w http.ResponseWriter, cluster, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.get(w, cluster, id); a != nil {
		writeJSON(w, map[string]any{"association": a})
	}
}

func (e *EKS) update(w http.ResponseWriter, r *http.Request, cluster, id string) {
	var in struct {
		RoleArn, TargetRoleArn, Policy *string
		DisableSessionTags             *bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		eksError(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.get(w, cluster, id)
	if a == nil {
		return
	}
	if in.RoleArn != nil {
		if !roleARN.MatchString(*in.RoleArn) {
			eksError(w, http.StatusBadRequest, "InvalidParameterException", "roleArn is not a role ARN")
			return
		}
		a.RoleArn = *in.RoleArn
	}
	if in.DisableSessionTags != nil {
		a.DisableSessionTags = *in.DisableSessionTags
	}
	if in.TargetRoleArn != nil {
		a.TargetRoleArn = *in.TargetRoleArn
		if a.TargetRoleArn != "" && a.ExternalID == "" {
			a.ExternalID = randomString(36)
		}
	}
	if in.Policy != nil {
		a.Policy = *in.Policy
	}
	a.ModifiedAt = float64(time.Now().Unix())
	writeJSON(w, map[string]any{"association": a})
}

func (e *EKS) delete(w http.ResponseWriter, cluster, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.get(w, cluster, id); a != nil {
		delete(e.byID, id)
		writeJSON(w, map[string]any{"association": a})
	}
}

func (e *EKS) list(w http.ResponseWriter, r *http.Request, cluster string) {
	q := r.URL.Query()
	size := 100
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			eksError(w, http.StatusBadRequest, "InvalidParameterException", "maxResults must be between 1 and 100")
			return
		}
		size = n
	}
	if e.PageSize > 0 && e.PageSize < size {
		size = e.PageSize
	}
	if _, ok := e.requireCluster(w, r, cluster); !ok {
		return
	}
	e.mu.Lock()
	var all []*association
	for _, a := range e.byID {
		if a.ClusterName == cluster && (q.Get("namespace") == "" || a.Namespace == q.Get("namespace")) &&
			(q.Get("serviceAccount") == "" || a.ServiceAccount == q.Get("serviceAccount")) {
			all = append(all, a)
		}
	}
	e.mu.Unlock()
	slices.SortFunc(all, func(a, b *association) int { return strings.Compare(a.AssociationID, b.AssociationID) })
	start := 0
	if tok := q.Get("nextToken"); tok != "" {
		// The token is the last ID returned: a deleted association does not
		// shift later pages.
		last, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			eksError(w, http.StatusBadRequest, "InvalidParameterException", "invalid nextToken")
			return
		}
		start, _ = slices.BinarySearchFunc(all, string(last), func(a *association, id string) int { return strings.Compare(a.AssociationID, id) })
		if start < len(all) && all[start].AssociationID == string(last) {
			start++
		}
	}
	end := min(start+size, len(all))
	summaries := []map[string]string{}
	for _, a := range all[start:end] {
		summaries = append(summaries, map[string]string{"clusterName": a.ClusterName, "namespace": a.Namespace,
			"serviceAccount": a.ServiceAccount, "associationArn": a.AssociationArn, "associationId": a.AssociationID})
	}
	out := map[string]any{"associations": summaries}
	if end < len(all) {
		out["nextToken"] = base64.RawURLEncoding.EncodeToString([]byte(all[end-1].AssociationID))
	}
	writeJSON(w, out)
}

func (e *EKS) tags(w http.ResponseWriter, r *http.Request, arn string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var a *association
	for _, x := range e.byID {
		if x.AssociationArn == arn {
			a = x
		}
	}
	if a == nil {
		eksError(w, http.StatusNotFound, "NotFoundException", "No resource found for ARN: "+arn)
		return
	}
	switch r.Method {
	case http.MethodGet:
		e.calls["ListTagsForResource"]++
		writeJSON(w, map[string]any{"tags": a.Tags})
	case http.MethodPost:
		e.calls["TagResource"]++
		var in struct{ Tags map[string]string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			eksError(w, http.StatusBadRequest, "BadRequestException", err.Error())
			return
		}
		for k, v := range in.Tags {
			a.Tags[k] = v
		}
		writeJSON(w, map[string]any{})
	case http.MethodDelete:
		e.calls["UntagResource"]++
		for _, k := range r.URL.Query()["tagKeys"] {
			delete(a.Tags, k)
		}
		writeJSON(w, map[string]any{})
	}
}

// assume is eks-auth's AssumeRoleForPodIdentity.
func (e *EKS) assume(w http.ResponseWriter, r *http.Request, cluster string) {
	var in struct{ Token string }
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &in); err != nil || in.Token == "" {
		eksError(w, http.StatusBadRequest, "InvalidRequestException", "a token is required")
		return
	}
	if e.Kube == nil {
		eksError(w, http.StatusInternalServerError, "InternalServerException", "the emulator has no API server to review tokens with")
		return
	}
	ctx := r.Context()
	review, err := e.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: in.Token, Audiences: []string{PodIdentityAudience}}}, metav1.CreateOptions{})
	if err != nil {
		eksError(w, http.StatusInternalServerError, "InternalServerException", err.Error())
		return
	}
	user := review.Status.User
	parts := strings.Split(user.Username, ":")
	if !review.Status.Authenticated || len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		eksError(w, http.StatusUnauthorized, "InvalidTokenException", "the token is not a ServiceAccount token for "+PodIdentityAudience)
		return
	}
	namespace, sa := parts[2], parts[3]
	podName, podUID := first(user.Extra["authentication.kubernetes.io/pod-name"]), first(user.Extra["authentication.kubernetes.io/pod-uid"])
	e.mu.Lock()
	var a association
	found := false
	for _, x := range e.byID {
		if x.ClusterName == cluster && x.Namespace == namespace && x.ServiceAccount == sa {
			a, found = *x, true
		}
	}
	e.mu.Unlock()
	if !found {
		eksError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("no pod identity association for %s/%s in cluster %s", namespace, sa, cluster))
		return
	}
	account := strings.Split(a.clusterArn, ":")[4]
	tags := map[string]string{}
	if !a.DisableSessionTags {
		tags = map[string]string{"eks-cluster-arn": a.clusterArn, "eks-cluster-name": cluster,
			"kubernetes-namespace": namespace, "kubernetes-service-account": sa, "kubernetes-pod-name": podName, "kubernetes-pod-uid": podUID}
	}
	ok, err := e.trustAllows(ctx, a.RoleArn, account, a.clusterArn, tags)
	if err != nil || !ok {
		eksError(w, http.StatusForbidden, "AccessDeniedException",
			fmt.Sprintf("%s may not assume %s with these session tags (%v)", PodIdentityService, a.RoleArn, err))
		return
	}
	in2 := &sts.AssumeRoleInput{RoleArn: aws.String(a.RoleArn), RoleSessionName: aws.String(sessionName(cluster, podName))}
	for k, v := range tags {
		if v != "" {
			in2.Tags = append(in2.Tags, ststypes.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
	}
	out, err := e.sts.AssumeRole(ctx, in2)
	if err != nil {
		eksError(w, http.StatusForbidden, "AccessDeniedException", err.Error())
		return
	}
	if a.TargetRoleArn != "" {
		// Role chaining: with the role's credentials, the target role,
		// passing the association's external ID; the target's trust is
		// evaluated as STS would for the assumed role.
		if out, err = e.chain(ctx, a, out.Credentials, sessionName(cluster, podName)); err != nil {
			eksError(w, http.StatusForbidden, "AccessDeniedException", err.Error())
			return
		}
	}
	writeJSON(w, map[string]any{
		"subject":                map[string]string{"namespace": namespace, "serviceAccount": sa},
		"audience":               PodIdentityAudience,
		"podIdentityAssociation": map[string]string{"associationArn": a.AssociationArn, "associationId": a.AssociationID},
		"assumedRoleUser":        map[string]string{"arn": aws.ToString(out.AssumedRoleUser.Arn), "assumeRoleId": aws.ToString(out.AssumedRoleUser.AssumedRoleId)},
		"credentials": map[string]any{"accessKeyId": aws.ToString(out.Credentials.AccessKeyId), "secretAccessKey": aws.ToString(out.Credentials.SecretAccessKey),
			"sessionToken": aws.ToString(out.Credentials.SessionToken), "expiration": float64(aws.ToTime(out.Credentials.Expiration).Unix())},
	})
}

// chain assumes the association's target role with the credentials of its
// role, as EKS Pod Identity does for a target role: sts:AssumeRole with the
// association's external ID, allowed only if the target's trust lets the
// association's role in with it.
func (e *EKS) chain(ctx context.Context, a association, creds *ststypes.Credentials, session string) (*sts.AssumeRoleOutput, error) {
	target, err := arn.Parse(a.TargetRoleArn)
	if err != nil {
		return nil, fmt.Errorf("target role %s: %w", a.TargetRoleArn, err)
	}
	// Read the target's trust in its account (an admin's view, not the
	// chain's: moto does not evaluate trust).
	admin, err := e.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target.AccountID + ":role/eks-emulator"),
		RoleSessionName: aws.String("eks-emulator")})
	if err != nil {
		return nil, err
	}
	c := admin.Credentials
	inTarget := iam.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId),
		aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))}, func(o *iam.Options) { o.BaseEndpoint = aws.String(e.moto) })
	role, err := inTarget.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(target.Resource[strings.LastIndex(target.Resource, "/")+1:])})
	if err != nil {
		return nil, err
	}
	ok, err := TrustAllows(aws.ToString(role.Role.AssumeRolePolicyDocument), TrustRequest{PrincipalType: "AWS", Principal: a.RoleArn,
		Actions: []string{"sts:AssumeRole"}, Context: map[string]string{"sts:ExternalId": a.ExternalID}})
	if err != nil || !ok {
		return nil, fmt.Errorf("%s may not assume target role %s with external ID %s (%v)", a.RoleArn, a.TargetRoleArn, a.ExternalID, err)
	}
	asRole := sts.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(creds.AccessKeyId),
		aws.ToString(creds.SecretAccessKey), aws.ToString(creds.SessionToken))}, func(o *sts.Options) { o.BaseEndpoint = aws.String(e.moto) })
	return asRole.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(a.TargetRoleArn), RoleSessionName: aws.String(session),
		ExternalId: aws.String(a.ExternalID)})
}

// trustAllows evaluates the role's trust policy as STS would for EKS's
// service principal: sts:AssumeRole, and sts:TagSession when it passes tags.
func (e *EKS) trustAllows(ctx context.Context, roleArn, account, clusterArn string, tags map[string]string) (bool, error) {
	name := roleArn[strings.LastIndex(roleArn, "/")+1:]
	out, err := e.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return false, err
	}
	req := TrustRequest{PrincipalType: "Service", Principal: PodIdentityService, Actions: []string{"sts:AssumeRole"},
		Context: map[string]string{"aws:SourceAccount": account, "aws:SourceArn": clusterArn}}
	if len(tags) > 0 {
		req.Actions = append(req.Actions, "sts:TagSession")
		for k, v := range tags {
			req.Context["aws:RequestTag/"+k] = v
		}
	}
	return TrustAllows(aws.ToString(out.Role.AssumeRolePolicyDocument), req)
}

func sessionName(cluster, pod string) string {
	n := "eks-" + cluster + "-" + pod + "-" + randomString(8)
	if len(n) > 64 {
		n = n[:64]
	}
	return regexp.MustCompile(`[^\w+=,.@-]`).ReplaceAllString(n, "-")
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(errors.Join(errors.New("crypto/rand"), err))
		}
		b[i] = alphabet[x.Int64()]
	}
	return string(b)
}

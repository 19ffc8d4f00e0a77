// Package testenv starts the local parts the integration tests and the demo
// run against: a real kube-apiserver and etcd (envtest) and the moto IAM/STS
// emulator, plus a switchable proxy in front of moto to simulate an outage.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

// Account is the AWS account moto answers for.
const Account = "123456789012"

// RepoRoot finds the module root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// NewEnvironment is an envtest environment with the operator's CRDs. It uses
// KUBEBUILDER_ASSETS (see hack/envtest-assets.sh).
func NewEnvironment() (*envtest.Environment, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run through `make test`/`make demo`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	return &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		// The validating webhooks and the pod identity webhook, pointed by
		// envtest at a local server.
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook"),
			filepath.Join(root, "config", "components", "pod-identity-webhook", "mutating_webhook.yaml")}},
	}, nil
}

// InstallPrerequisiteCRDs installs stand-ins for the CRDs of cert-manager
// (Issuer, Certificate) and the Prometheus Operator (ServiceMonitor,
// PrometheusRule) that the optional manifests use, and waits until they are
// served. Installing them again is harmless.
func InstallPrerequisiteCRDs(cfg *rest.Config) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(root, "internal", "testenv", "prerequisite-crds")}, ErrorIfPathMissing: true})
	return err
}

// Moto is a running moto server.
type Moto struct {
	URL string
	cmd *exec.Cmd
}

// StartMoto starts the moto server from MOTO_SERVER (see hack/moto.sh) on a
// free loopback port and waits until it answers.
func StartMoto() (*Moto, error) {
	bin := os.Getenv("MOTO_SERVER")
	if bin == "" {
		return nil, errors.New("MOTO_SERVER is not set: run through `make test`/`make demo`, or export MOTO_SERVER=$(hack/moto.sh)")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = nil, nil
	if os.Getenv("MOTO_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	// AWS managed policies (arn:aws:iam::aws:policy/...) exist in real IAM.
	cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting moto: %w", err)
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(m.URL + "/moto-api/")
		if err == nil {
			_ = resp.Body.Close()
			return m, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.Stop()
	return nil, errors.New("moto did not answer within 60s")
}

// Stop ends the moto server.
func (m *Moto) Stop() {
	if m == nil || m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	_ = m.cmd.Wait()
}

// Proxy forwards to a target and can be switched to answer every request, or
// only the requests for some actions, with 503 Service Unavailable, as an
// unreachable or failing AWS endpoint does.
type Proxy struct {
	URL     string
	down    atomic.Bool
	failing atomic.Pointer[map[string]bool]
	server  *http.Server

	mu    sync.Mutex
	calls map[string]int // "Action RoleName" -> requests
	// byAccount counts requests by the AWS account of their credentials
	// ("" the caller's own) and "Action RoleName"; keys maps access key
	// IDs from sts:AssumeRole answers to the account of the assumed role.
	byAccount map[string]map[string]int
	keys      map[string]string
	// denied are role ARNs whose sts:AssumeRole is denied.
	denied atomic.Pointer[map[string]bool]

	// throttle answers every n-th request with a throttling error (0: off).
	throttle atomic.Int64
	seq      atomic.Int64
	// pageDetails pages GetAccountAuthorizationDetails at most this many
	// roles per page (0: as the target answers).
	pageDetails atomic.Int64
	// details is the target's whole answer to the first page of the
	// current paginated GetAccountAuthorizationDetails, which later pages
	// are cut from (IAM serves a page in about a second; moto would rebuild
	// every role for each page).
	detailsMu sync.Mutex
	details   *httptest.ResponseRecorder
}

// StartProxy starts a proxy to target on a free loopback port.
func StartProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + l.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form := p.form(r)
		p.count(r, form)
		if n := p.throttle.Load(); n > 0 && p.seq.Add(1)%n == 0 {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>`)
			return
		}
		if form.Get("Action") == "AssumeRole" && p.denies(form.Get("RoleArn")) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error></ErrorResponse>`, form.Get("RoleArn"))
			return
		}
		if p.down.Load() || p.fails(form) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>test outage</Message></Error></ErrorResponse>`)
			return
		}
		if n := p.pageDetails.Load(); n > 0 && form.Get("Action") == "GetAccountAuthorizationDetails" {
			p.servePage(w, r, rp, form, int(n))
			return
		}
		if form.Get("Action") == "AssumeRole" {
			// Learn which account the returned access key acts in.
			r.Header.Del("Accept-Encoding")
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			if rec.Code == http.StatusOK {
				p.learnKey(rec.Body.Bytes())
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.server.Serve(l) }()
	return p, nil
}

// PageAccountDetails makes the proxy answer GetAccountAuthorizationDetails
// in pages of at most n roles (and MaxItems), following Marker, as IAM does
// and moto does not; 0 ends it.
func (p *Proxy) PageAccountDetails(n int) { p.pageDetails.Store(int64(n)) }

func (p *Proxy) servePage(w http.ResponseWriter, r *http.Request, rp http.Handler, form url.Values, n int) {
	offset, _ := strconv.Atoi(form.Get("Marker"))
	if m, err := strconv.Atoi(form.Get("MaxItems")); err == nil && m > 0 && m < n {
		n = m
	}
	r.Header.Del("Accept-Encoding")
	p.detailsMu.Lock()
	rec := p.details
	if form.Get("Marker") == "" || rec == nil {
		rec = httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		p.details = rec
	}
	p.detailsMu.Unlock()
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		paged, err := PageAccountDetails(body, offset, n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body = paged
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// SetDown switches the outage on or off.
func (p *Proxy) SetDown(down bool) { p.down.Store(down) }

// Throttle answers one request in every n with IAM's throttling error
// (n = 2: half of them); 0 ends it.
func (p *Proxy) Throttle(n int) { p.throttle.Store(int64(n)) }

// CallsByAction is how many requests of each action the proxy saw.
func (p *Proxy) CallsByAction() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.calls {
		out[strings.SplitN(k, " ", 2)[0]] += v
	}
	return out
}

// FailActions makes the proxy fail requests for these query-API actions
// (for example "PutRolePolicy") and forward the rest; no actions ends it.
func (p *Proxy) FailActions(actions ...string) {
	set := map[string]bool{}
	for _, a := range actions {
		set[a] = true
	}
	p.failing.Store(&set)
}

// DenyAssumeRole answers sts:AssumeRole of these role ARNs with
// AccessDenied, as STS does when a role's trust does not let the caller in
// (moto does not evaluate trust); no ARNs ends it.
func (p *Proxy) DenyAssumeRole(roleARNs ...string) {
	set := map[string]bool{}
	for _, a := range roleARNs {
		set[a] = true
	}
	p.denied.Store(&set)
}

func (p *Proxy) denies(roleARN string) bool {
	set := p.denied.Load()
	return set != nil && (*set)[roleARN]
}

// form reads the request's query-API parameters and puts the body back for
// forwarding.
func (p *Proxy) form(r *http.Request) url.Values {
	if r.Body == nil {
		return url.Values{}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return url.Values{}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	return form
}

func (p *Proxy) fails(form url.Values) bool {
	set := p.failing.Load()
	return set != nil && (*set)[form.Get("Action")]
}

func (p *Proxy) count(r *http.Request, form url.Values) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls, p.byAccount = map[string]int{}, map[string]map[string]int{}
	}
	key := form.Get("Action") + " " + form.Get("RoleName")
	p.calls[key]++
	account := p.keys[accessKeyID(r.Header.Get("Authorization"))]
	if p.byAccount[account] == nil {
		p.byAccount[account] = map[string]int{}
	}
	p.byAccount[account][key]++
}

// accessKeyID is the access key ID of a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...").
func accessKeyID(authz string) string {
	_, cred, ok := strings.Cut(authz, "Credential=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(cred, "/")
	return id
}

// learnKey records the account of the credentials an sts:AssumeRole answer
// carries: the account of its AssumedRoleUser's ARN.
func (p *Proxy) learnKey(body []byte) {
	var out struct {
		Result struct {
			Credentials struct {
				AccessKeyID string `xml:"AccessKeyId"`
			}
			AssumedRoleUser struct{ Arn string }
		} `xml:"AssumeRoleResult"`
	}
	if xml.Unmarshal(body, &out) != nil || out.Result.Credentials.AccessKeyID == "" {
		return
	}
	parts := strings.Split(out.Result.AssumedRoleUser.Arn, ":")
	if len(parts) < 5 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil {
		p.keys = map[string]string{}
	}
	p.keys[out.Result.Credentials.AccessKeyID] = parts[4]
}

// CallsIn is how many requests for action (any, when empty) and roleName
// (any, when empty) the proxy saw signed with credentials of an account:
// "" for the caller's own credentials, else the account whose role the
// credentials came from (sts:AssumeRole through this proxy).
func (p *Proxy) CallsIn(account, action, roleName string) int {
	n := 0
	p.eachIn(account, func(a, r string, v int) {
		if (action == "" || a == action) && (roleName == "" || r == roleName) {
			n += v
		}
	})
	return n
}

// CallsByActionIn is how many requests of each action the proxy saw signed
// with credentials of an account (as CallsIn).
func (p *Proxy) CallsByActionIn(account string) map[string]int {
	out := map[string]int{}
	p.eachIn(account, func(a, _ string, v int) { out[a] += v })
	return out
}

// RolesNamedIn lists the role names requests signed with the account's
// credentials named (RoleName), with how many requests named each.
func (p *Proxy) RolesNamedIn(account string) map[string]int {
	out := map[string]int{}
	p.eachIn(account, func(_, r string, v int) {
		if r != "" {
			out[r] += v
		}
	})
	return out
}

// eachIn calls f with each action and role name requests signed with the
// account's credentials named, and how many did.
func (p *Proxy) eachIn(account string, f func(action, roleName string, n int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.byAccount[account] {
		a, r, _ := strings.Cut(k, " ")
		f(a, r, v)
	}
}

// Calls is how many requests for action (and roleName, when not empty) the
// proxy forwarded or failed, SDK retries included.
func (p *Proxy) Calls(action, roleName string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if roleName != "" {
		return p.calls[action+" "+roleName]
	}
	n := 0
	for k, v := range p.calls {
		if strings.HasPrefix(k, action+" ") {
			n += v
		}
	}
	return n
}

// Stop closes the proxy.
func (p *Proxy) Stop() {
	if p != nil && p.server != nil {
		_ = p.server.Close()
	}
}

// FreePort returns a TCP port that is free on the loopback interface.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitForWebhook waits until the operator's webhook server, started on the
// address envtest registered, answers TLS: until then the API server rejects
// every write the webhooks cover.
func WaitForWebhook(ctx context.Context, o envtest.WebhookInstallOptions, timeout time.Duration) error {
	addr := net.JoinHostPort(o.LocalServingHost, strconv.Itoa(o.LocalServingPort))
	deadline := time.Now().Add(timeout)
	for {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only checks that the server is up
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s not up after %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PagedIAM splits GetAccountAuthorizationDetails answers into pages of
// PageSize roles, with IsTruncated and Marker as IAM sets them: moto always
// answers with one page, so without it the operator's paging is untested.
type PagedIAM struct {
	awsiam.API
	PageSize int
}

// GetAccountAuthorizationDetails answers one page.
func (p *PagedIAM) GetAccountAuthorizationDetails(ctx context.Context, in *iam.GetAccountAuthorizationDetailsInput, optFns ...func(*iam.Options)) (*iam.GetAccountAuthorizationDetailsOutput, error) {
	all := *in
	all.Marker, all.MaxItems = nil, nil
	full, err := p.API.GetAccountAuthorizationDetails(ctx, &all, optFns...)
	if err != nil {
		return nil, err
	}
	start := 0
	if in.Marker != nil {
		if start, err = strconv.Atoi(*in.Marker); err != nil {
			return nil, fmt.Errorf("bad marker %q", *in.Marker)
		}
	}
	size := p.PageSize
	if in.MaxItems != nil && int(*in.MaxItems) < size {
		size = int(*in.MaxItems)
	}
	end := min(start+size, len(full.RoleDetailList))
	out := *full
	out.RoleDetailList = full.RoleDetailList[min(start, end):end]
	out.IsTruncated, out.Marker = end < len(full.RoleDetailList), nil
	if out.IsTruncated {
		out.Marker = aws.String(strconv.Itoa(end))
	}
	return &out, nil
}

// ProviderAPI is the IAM call RegisterOIDCProvider makes.
type ProviderAPI interface {
	CreateOpenIDConnectProvider(ctx context.Context, in *iam.CreateOpenIDConnectProviderInput, optFns ...func(*iam.Options)) (*iam.CreateOpenIDConnectProviderOutput, error)
}

// RegisterOIDCProvider registers an issuer in IAM as an admin does: the URL
// exactly as tokens carry it in iss (a trailing "/" included), with the
// given client IDs (default policy.DefaultAudience). It returns the provider ARN.
func RegisterOIDCProvider(ctx context.Context, api ProviderAPI, issuer string, clientIDs ...string) (string, error) {
	if len(clientIDs) == 0 {
		clientIDs = []string{policy.DefaultAudience}
	}
	out, err := api.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuer), ClientIDList: clientIDs, ThumbprintList: []string{strings.Repeat("0", 40)}})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.OpenIDConnectProviderArn), nil
}

// AdminKubeconfig adds a user of system:masters named name to env and
// writes a kubeconfig for it at path.
func AdminKubeconfig(env *envtest.Environment, name, path string) (*envtest.AuthenticatedUser, error) {
	user, err := env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	raw, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	return user, os.WriteFile(path, raw, 0o600)
}

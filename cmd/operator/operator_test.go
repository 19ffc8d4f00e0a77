package operator

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/policy"
)

func validOptions() Options {
	return Options{ClusterName: "dev", RolePath: "/podidentity/", SyncPeriod: 10 * time.Minute, MaxConcurrentReconciles: 1,
		TrustPolicySizeLimit: 2048, ManagedPoliciesPerRole: 10, MaxBackoff: time.Minute,
		IAMReadQPS: 100, IAMReadBurst: 100, IAMWriteQPS: 100, IAMWriteBurst: 100, KubeAPIQPS: 500, KubeAPIBurst: 1000}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{name: "valid", mutate: func(*Options) {}},
		{name: "cluster name required", mutate: func(o *Options) { o.ClusterName = "" }, wantErr: "set it (or the environment variable PODIDENTITY_CLUSTER_NAME)"},
		{name: "the shipped placeholder", mutate: func(o *Options) { o.ClusterName = "CHANGE-ME" }, wantErr: `--cluster-name is "CHANGE-ME": set it`},
		{name: "another placeholder", mutate: func(o *Options) { o.ClusterName = "<cluster-name>" }, wantErr: "PODIDENTITY_CLUSTER_NAME"},
		{name: "cluster name characters", mutate: func(o *Options) { o.ClusterName = "a/b" }, wantErr: "--cluster-name"},
		{name: "role path", mutate: func(o *Options) { o.RolePath = "podidentity" }, wantErr: "--role-path"},
		{name: "prefix", mutate: func(o *Options) { o.RoleNamePrefix = "bad prefix" }, wantErr: "--role-name-prefix"},
		{name: "boundary ARN", mutate: func(o *Options) { o.PermissionsBoundaryARN = "boundary" }, wantErr: "--permissions-boundary-arn"},
		{name: "provider ARN", mutate: func(o *Options) { o.OIDCProviderARN = "provider" }, wantErr: "--oidc-provider-arn"},
		{name: "sync period", mutate: func(o *Options) { o.SyncPeriod = time.Millisecond }, wantErr: "--sync-period"},
		{name: "concurrency", mutate: func(o *Options) { o.MaxConcurrentReconciles = 0 }, wantErr: "--max-concurrent-reconciles"},
		{name: "namespace budget rate", mutate: func(o *Options) { o.NamespaceChangeQPS = -1 }, wantErr: "--namespace-change-qps"},
		{name: "namespace budget burst", mutate: func(o *Options) { o.NamespaceChangeQPS, o.NamespaceChangeBurst = 10, 0 }, wantErr: "--namespace-change-burst"},
		{name: "no namespace budget", mutate: func(o *Options) { o.NamespaceChangeQPS, o.NamespaceChangeBurst = 0, 0 }},
		{name: "gc percent", mutate: func(o *Options) { o.GCPercent = -1 }, wantErr: "--gc-percent"},
		{name: "trust size quota", mutate: func(o *Options) { o.TrustPolicySizeLimit = 5000 }, wantErr: "--trust-policy-size-limit"},
		{name: "managed quota", mutate: func(o *Options) { o.ManagedPoliciesPerRole = 21 }, wantErr: "--managed-policies-per-role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.mutate(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

type fakeSTS struct {
	arn, account string
	err          error
}

func (f fakeSTS) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	return &sts.GetCallerIdentityOutput{Arn: aws.String(f.arn), Account: aws.String(f.account)}, f.err
}

func TestResolveRoleConfig(t *testing.T) {
	tests := []struct {
		name         string
		issuer       string
		provider     string
		sts          fakeSTS
		additional   []string
		wantIssuer   string
		wantProvider string
		wantErr      string
	}{
		{name: "provider from caller identity", issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
			sts:        fakeSTS{arn: "arn:aws:sts::111122223333:assumed-role/op/x", account: "111122223333"},
			wantIssuer: "oidc.eks.us-east-1.amazonaws.com/id/ABC", wantProvider: "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"},
		// The issuer is an identity: a trailing slash is part of it, in the
		// provider ARN and the condition keys alike.
		{name: "trailing slash kept", issuer: "https://sts.windows.net/tenant/",
			sts:        fakeSTS{arn: "arn:aws:sts::111122223333:assumed-role/op/x", account: "111122223333"},
			wantIssuer: "sts.windows.net/tenant/", wantProvider: "arn:aws:iam::111122223333:oidc-provider/sts.windows.net/tenant/"},
		{name: "http issuer refused", issuer: "http://issuer.example", wantErr: "need an https issuer"},
		{name: "an additional issuer twice", issuer: "https://issuer", provider: "arn:aws:iam::1:oidc-provider/issuer",
			additional: []string{"https://other", "https://other"}, wantErr: "listed twice"},
		{name: "this cluster's issuer as an additional one", issuer: "https://issuer", provider: "arn:aws:iam::1:oidc-provider/issuer",
			additional: []string{"https://issuer"}, wantErr: "this cluster's own"},
		{name: "an additional provider ARN that is not one", issuer: "https://issuer", provider: "arn:aws:iam::1:oidc-provider/issuer",
			additional: []string{"https://other=arn:aws:iam::1:role/x"}, wantErr: "not an IAM OIDC provider ARN"},
		{name: "partition aware", issuer: "https://oidc.eks.cn-north-1.amazonaws.com.cn/id/X",
			sts:        fakeSTS{arn: "arn:aws-cn:sts::111122223333:assumed-role/op/x", account: "111122223333"},
			wantIssuer: "oidc.eks.cn-north-1.amazonaws.com.cn/id/X", wantProvider: "arn:aws-cn:iam::111122223333:oidc-provider/oidc.eks.cn-north-1.amazonaws.com.cn/id/X"},
		{name: "explicit provider skips STS", issuer: "https://issuer", provider: "arn:aws:iam::1:oidc-provider/issuer",
			sts: fakeSTS{err: errors.New("must not be called")}, wantIssuer: "issuer", wantProvider: "arn:aws:iam::1:oidc-provider/issuer"},
		{name: "STS failure is explained", issuer: "https://issuer", sts: fakeSTS{err: errors.New("no credentials")}, wantErr: "set --oidc-provider-arn to skip"},
		{name: "empty issuer", issuer: "https:///", wantErr: "has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			o.OIDCIssuerURL, o.OIDCProviderARN, o.AdditionalOIDCIssuers = tt.issuer, tt.provider, tt.additional
			got, err := ResolveRoleConfig(context.Background(), nil, o, tt.sts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer != tt.wantIssuer || got.ProviderARN != tt.wantProvider {
				t.Errorf("got issuer %q provider %q, want %q %q", got.Issuer, got.ProviderARN, tt.wantIssuer, tt.wantProvider)
			}
		})
	}
}

func TestFlagsFromEnv(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.BindFlags(fs)
	env := map[string]string{"PODIDENTITY_CLUSTER_NAME": "prod", "PODIDENTITY_SYNC_PERIOD": "5m"}
	if err := FlagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--sync-period=1m"}); err != nil {
		t.Fatal(err)
	}
	if o.ClusterName != "prod" || o.SyncPeriod != time.Minute {
		t.Errorf("got cluster %q sync %s; want prod and the command line's 1m", o.ClusterName, o.SyncPeriod)
	}
	env = map[string]string{"PODIDENTITY_SYNC_PERIOD": "soon"}
	if err := FlagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "PODIDENTITY_SYNC_PERIOD") {
		t.Errorf("bad value not reported: %v", err)
	}
}

// TestDefaultRolePath pins the default that config/iam/operator-policy.json assumes.
func TestDefaultRolePath(t *testing.T) {
	var o Options
	o.BindFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	if o.RolePath != "/podidentity/" {
		t.Errorf("default --role-path is %q; update config/iam/operator-policy.json and its test too", o.RolePath)
	}
}

// TestEveryFlagIsDocumented keeps the README's flag table complete.
func TestEveryFlagIsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(readme), "`--"+f.Name+"`") {
			t.Errorf("flag --%s is not in README.md", f.Name)
		}
	})
}

func TestAdditionalIssuers(t *testing.T) {
	o := validOptions()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--additional-oidc-issuers=https://oidc.eks.eu-west-1.amazonaws.com/id/B, https://sts.windows.net/t/=arn:aws:iam::222233334444:oidc-provider/sts.windows.net/t/"}); err != nil {
		t.Fatal(err)
	}
	o.OIDCIssuerURL = "https://oidc.eks.us-east-1.amazonaws.com/id/A"
	got, err := ResolveRoleConfig(context.Background(), nil, o, fakeSTS{arn: "arn:aws:sts::111122223333:assumed-role/op/x", account: "111122223333"})
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Provider{
		{ARN: "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/B", ID: "oidc.eks.eu-west-1.amazonaws.com/id/B"},
		{ARN: "arn:aws:iam::222233334444:oidc-provider/sts.windows.net/t/", ID: "sts.windows.net/t/"},
	}
	if !reflect.DeepEqual(got.AdditionalProviders, want) {
		t.Errorf("additional = %+v, want %+v", got.AdditionalProviders, want)
	}
}

// A PodIdentityAccount's IAM rate limits override the flags field by field.
func TestAccountLimits(t *testing.T) {
	flags := awsiam.Limits{ReadQPS: 100, ReadBurst: 100, WriteQPS: 50, WriteBurst: 20}
	if got := AccountLimits(flags, nil); got != flags {
		t.Errorf("no limits: %+v", got)
	}
	got := AccountLimits(flags, &v1alpha1.IAMRateLimits{WriteQPS: 2, ReadBurst: 7})
	want := awsiam.Limits{ReadQPS: 100, ReadBurst: 7, WriteQPS: 2, WriteBurst: 20}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// The operator's requests to the API server do not ask for gzip (decision
// 99): read off the wire by a stand-in API server, through the HTTP client
// controller-runtime builds from the configuration.
func TestKubeClientAsksForNoCompression(t *testing.T) {
	encodings := make(chan string, 2)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encodings <- r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Success"}`))
	}))
	defer srv.Close()
	// Over TLS, as in a cluster (client-go uses Go's default transport,
	// which ignores the setting, for a plain-HTTP server).
	server := func() *rest.Config { return standIn(srv) }
	for _, c := range []struct {
		name string
		cfg  *rest.Config
		want string
	}{
		{"client-go's default", server(), "gzip"},
		{"the operator's", kubeClientConfig(server(), validOptions()), ""},
	} {
		hc, err := rest.HTTPClientFor(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(srv.URL + "/api/v1/namespaces")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := <-encodings; got != c.want {
			t.Errorf("%s configuration: Accept-Encoding %q, want %q", c.name, got, c.want)
		}
	}
	if cfg := kubeClientConfig(server(), validOptions()); cfg.QPS != 500 || cfg.Burst != 1000 {
		t.Errorf("QPS %v, burst %d; want the flags' 500, 1000", cfg.QPS, cfg.Burst)
	}
}

// TestWatchesHaveAConnectionOfTheirOwn: the cache's lists and watches reach
// the API server on another connection than the operator's requests, so a
// response to a write never waits behind a storm of watch events in one
// HTTP/2 connection. The manager gives the cache its own HTTP client (the
// one its client uses), which newWatchCache replaces.
func TestWatchesHaveAConnectionOfTheirOwn(t *testing.T) {
	lists := make(chan string, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/configmaps":
			// The informer's first list or watch (a streaming list).
			select {
			case lists <- r.RemoteAddr:
			default:
			}
			if r.URL.Query().Get("watch") == "true" {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				return
			}
			_, _ = w.Write([]byte(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`))
		default:
			w.Header().Set("X-Remote", r.RemoteAddr)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Success"}`))
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := kubeClientConfig(standIn(srv), validOptions())
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)

	for _, c := range []struct {
		name     string
		newCache cache.NewCacheFunc
		apart    bool
	}{
		{"controller-runtime's default", cache.New, false},
		{"the operator's", newWatchCache, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// As the manager does: one HTTP client for its client and cache.
			shared, err := rest.HTTPClientFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			informers, err := c.newCache(cfg, cache.Options{Scheme: Scheme(), Mapper: mapper, HTTPClient: shared})
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = informers.Start(ctx) }()
			if _, err := informers.GetInformer(ctx, &corev1.ConfigMap{}, cache.BlockUntilSynced(false)); err != nil {
				t.Fatal(err)
			}
			var listed string
			select {
			case listed = <-lists:
			case <-time.After(30 * time.Second):
				t.Fatal("the cache listed nothing")
			}
			resp, err := shared.Get(srv.URL + "/api/v1/namespaces/default/configmaps/x")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("the client spoke %s; the test needs HTTP/2", resp.Proto)
			}
			if requested := resp.Header.Get("X-Remote"); (requested != listed) != c.apart {
				t.Errorf("the cache listed from %s and the client requested from %s; want them on different connections: %v", listed, requested, c.apart)
			}
		})
	}
}

// standIn is a client configuration for a stand-in API server over TLS.
func standIn(srv *httptest.Server) *rest.Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

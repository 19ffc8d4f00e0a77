package awsiam

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// fakeIAM answers ListRoles and CreateRole; fail decides, per request
// number, whether to answer 503.
type fakeIAM struct {
	requests atomic.Int64
	fail     func(n int64) bool
}

func (f *fakeIAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	w.Header().Set("Content-Type", "text/xml")
	if f.fail(n) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>outage</Message></Error></ErrorResponse>`)
		return
	}
	_ = r.ParseForm()
	action := r.PostForm.Get("Action")
	_, _ = fmt.Fprintf(w, `<%[1]sResponse><%[1]sResult><IsTruncated>false</IsTruncated><Roles/></%[1]sResult></%[1]sResponse>`, action)
}

func client(t *testing.T, srv *httptest.Server, configure func(*aws.Config)) *iam.Client {
	t.Helper()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	configure(&cfg)
	return iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(srv.URL) })
}

// TestRetriesAreNotStarvedAfterAnOutage reproduces the issue: a long outage
// drains the standard retryer's quota, and afterwards, with IAM throttling
// half the calls, every call that needs a retry fails at once. With
// WithTrafficControl the same sequence recovers.
func TestRetriesAreNotStarvedAfterAnOutage(t *testing.T) {
	const outageCalls = 300
	run := func(configure func(*aws.Config)) (attempts int64, failuresAfter int) {
		f := &fakeIAM{}
		recovered := atomic.Bool{}
		f.fail = func(n int64) bool {
			if !recovered.Load() {
				return true
			}
			return n%2 == 0 // half the requests after recovery are throttled
		}
		srv := httptest.NewServer(f)
		defer srv.Close()
		c := client(t, srv, configure)
		for range outageCalls {
			_, _ = c.ListRoles(context.Background(), &iam.ListRolesInput{})
		}
		attempts = f.requests.Load()
		recovered.Store(true)
		for range 100 {
			if _, err := c.ListRoles(context.Background(), &iam.ListRolesInput{}); err != nil {
				failuresAfter++
			}
		}
		return attempts, failuresAfter
	}
	fast := func(o *retry.StandardOptions) { o.Backoff = retry.NewExponentialJitterBackoff(time.Millisecond) }

	sdkAttempts, sdkFailures := run(func(cfg *aws.Config) {
		cfg.Retryer = func() aws.Retryer { return retry.NewStandard(fast) }
	})
	if sdkAttempts >= 3*outageCalls || sdkFailures == 0 {
		t.Fatalf("the scenario does not drain the SDK's default retry quota (attempts %d, failures after %d)", sdkAttempts, sdkFailures)
	}

	attempts, failures := run(func(cfg *aws.Config) {
		WithTrafficControl(cfg, Limits{ReadQPS: 1e6, ReadBurst: 1000, WriteQPS: 1e6, WriteBurst: 1000, MaxBackoff: time.Millisecond})
	})
	if attempts != 3*outageCalls {
		t.Errorf("attempts during the outage = %d, want every call retried (%d)", attempts, 3*outageCalls)
	}
	if failures != 0 {
		t.Errorf("%d calls failed after IAM recovered with 50%% throttling", failures)
	}
}

type countingWaiter struct{ n atomic.Int64 }

func (c *countingWaiter) Wait(context.Context) error { c.n.Add(1); return nil }

func TestBucketsPerAttemptByKind(t *testing.T) {
	f := &fakeIAM{fail: func(n int64) bool { return n == 1 }} // the first attempt fails
	srv := httptest.NewServer(f)
	defer srv.Close()
	read, write := &countingWaiter{}, &countingWaiter{}
	c := client(t, srv, func(cfg *aws.Config) {
		withBuckets(cfg, read, write)
		cfg.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.Backoff = retry.NewExponentialJitterBackoff(time.Millisecond) })
		}
	})
	if _, err := c.ListRoles(context.Background(), &iam.ListRolesInput{}); err != nil {
		t.Fatal(err)
	}
	if read.n.Load() != 2 || write.n.Load() != 0 {
		t.Errorf("a read retried once took %d read and %d write tokens, want 2 and 0", read.n.Load(), write.n.Load())
	}
	_, _ = c.CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String("{}")})
	if write.n.Load() != 1 {
		t.Errorf("a write took %d write tokens, want 1", write.n.Load())
	}
	for op, want := range map[string]bool{"GetRole": true, "ListRolePolicies": true, "GetAccountAuthorizationDetails": true, "PutRolePolicy": false, "TagRole": false} {
		if IsRead(op) != want {
			t.Errorf("IsRead(%s) = %v", op, !want)
		}
	}
}

func TestBucketsBoundTheRate(t *testing.T) {
	f := &fakeIAM{fail: func(int64) bool { return false }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := client(t, srv, func(cfg *aws.Config) {
		WithTrafficControl(cfg, Limits{ReadQPS: 1e6, ReadBurst: 100, WriteQPS: 0.001, WriteBurst: 2})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var ok int
	for range 5 {
		if _, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String("{}")}); err == nil {
			ok++
		}
	}
	// The burst of 2 passes; the third write waits for a token that does not
	// come before the deadline. Reads are not held up by the write bucket.
	if ok != 2 {
		t.Errorf("%d writes passed a bucket of 2", ok)
	}
	if _, err := c.ListRoles(context.Background(), &iam.ListRolesInput{}); err != nil {
		t.Errorf("a read waited on the write bucket: %v", err)
	}
}

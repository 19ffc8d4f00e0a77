package metricsauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeAPI answers reviews as an API server with one valid token would, and
// records what it was asked.
type fakeAPI struct {
	tokens   map[string]authnv1.UserInfo
	allowed  map[string]bool // user name -> allowed
	denied   bool            // SubjectAccessReview reports an explicit deny as well
	err      error
	tokenReq []string
	sars     []authzv1.SubjectAccessReviewSpec
}

type fakeTokens struct{ *fakeAPI }
type fakeAccess struct{ *fakeAPI }

func (f fakeTokens) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.tokenReq = append(f.tokenReq, tr.Spec.Token)
	if f.err != nil {
		return nil, f.err
	}
	out := tr.DeepCopy()
	if u, ok := f.tokens[tr.Spec.Token]; ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
	} else {
		out.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	return out, nil
}

func (f fakeAccess) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	f.sars = append(f.sars, sar.Spec)
	if f.err != nil {
		return nil, f.err
	}
	out := sar.DeepCopy()
	out.Status.Allowed = f.allowed[sar.Spec.User]
	out.Status.Denied = f.denied
	return out, nil
}

type fixture struct {
	api     *fakeAPI
	guard   *Guard
	handler http.Handler
	clock   time.Time
	served  int
	lastReq *http.Request
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		api: &fakeAPI{
			tokens: map[string]authnv1.UserInfo{
				"scraper-token":  {Username: "system:serviceaccount:monitoring:prometheus", UID: "u1", Groups: []string{"system:serviceaccounts"}, Extra: map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}}},
				"stranger-token": {Username: "system:serviceaccount:default:stranger", UID: "u2"},
			},
			allowed: map[string]bool{"system:serviceaccount:monitoring:prometheus": true},
		},
		clock: time.Unix(1_800_000_000, 0),
	}
	f.guard = New(fakeTokens{f.api}, fakeAccess{f.api})
	f.guard.now = func() time.Time { return f.clock }
	h, err := f.guard.Filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.served++
		f.lastReq = r
		_, _ = w.Write([]byte("metrics"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	return f
}

func (f *fixture) get(authz string) int {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Code
}

// counts are the reviews asked of the API server and the requests served.
type counts struct{ tokens, access, served int }

func (f *fixture) counts() counts {
	return counts{tokens: len(f.api.tokenReq), access: len(f.api.sars), served: f.served}
}

func TestRequestsWithoutABearerTokenAreUnauthorizedWithoutAsking(t *testing.T) {
	f := newFixture(t)
	for _, h := range []string{"", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "scraper-token"} {
		if code := f.get(h); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: got %d, want 401", h, code)
		}
	}
	if got := f.counts(); got != (counts{}) {
		t.Fatalf("asked the API server or served: %+v", got)
	}
}

func TestAuthorizedScraperIsServedAndAnswersAreCached(t *testing.T) {
	f := newFixture(t)
	if code := f.get("Bearer scraper-token"); code != http.StatusOK {
		t.Fatalf("got %d, want 200", code)
	}
	if f.served != 1 || f.lastReq.Header.Get("Authorization") != "" {
		t.Fatalf("served %d, token forwarded to the handler: %q", f.served, f.lastReq.Header.Get("Authorization"))
	}
	if len(f.api.sars) != 1 {
		t.Fatalf("SubjectAccessReviews: %d", len(f.api.sars))
	}
	spec := f.api.sars[0]
	if spec.User != "system:serviceaccount:monitoring:prometheus" || spec.UID != "u1" ||
		fmt.Sprint(spec.Groups) != "[system:serviceaccounts]" ||
		fmt.Sprint(spec.Extra["authentication.kubernetes.io/pod-name"]) != "[prometheus-0]" ||
		spec.ResourceAttributes != nil || spec.NonResourceAttributes == nil ||
		*spec.NonResourceAttributes != (authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}) {
		t.Fatalf("SubjectAccessReview spec: %+v", spec)
	}

	// Within the lifetimes: no further reviews.
	f.clock = f.clock.Add(TokenTTL - time.Second)
	if code := f.get("bearer  scraper-token "); code != http.StatusOK {
		t.Fatalf("got %d, want 200", code)
	}
	if got := f.counts(); got.tokens != 1 || got.access != 1 {
		t.Fatalf("reviews within their lifetimes: %+v", got)
	}
	// The token's answer expires first, then the decision's.
	f.clock = f.clock.Add(2 * time.Second)
	f.get("Bearer scraper-token")
	if got := f.counts(); got.tokens != 2 || got.access != 1 {
		t.Fatalf("after the token lifetime: %+v", got)
	}
	f.clock = f.clock.Add(AllowTTL)
	f.get("Bearer scraper-token")
	if len(f.api.sars) != 2 {
		t.Fatalf("after the allow lifetime: %d access reviews", len(f.api.sars))
	}
}

func TestInvalidTokenIsUnauthorizedAndCached(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		if code := f.get("Bearer forged"); code != http.StatusUnauthorized {
			t.Fatalf("got %d, want 401", code)
		}
	}
	if got := f.counts(); got != (counts{tokens: 1}) {
		t.Fatalf("%+v", got)
	}
}

func TestDeniedUserIsForbiddenAndAskedAgainAfterTheDenyLifetime(t *testing.T) {
	f := newFixture(t)
	if code := f.get("Bearer stranger-token"); code != http.StatusForbidden {
		t.Fatalf("got %d, want 403", code)
	}
	f.clock = f.clock.Add(DenyTTL - time.Second)
	f.get("Bearer stranger-token")
	if len(f.api.sars) != 1 {
		t.Fatalf("within the deny lifetime: %d access reviews", len(f.api.sars))
	}
	// A RoleBinding granted meanwhile takes effect once the denial expires.
	f.api.allowed["system:serviceaccount:default:stranger"] = true
	f.clock = f.clock.Add(2 * time.Second)
	if code := f.get("Bearer stranger-token"); code != http.StatusOK {
		t.Fatalf("after the deny lifetime: got %d, want 200", code)
	}
	if f.served != 1 {
		t.Fatalf("served %d", f.served)
	}
}

func TestExplicitDenyWins(t *testing.T) {
	f := newFixture(t)
	f.api.denied = true
	if code := f.get("Bearer scraper-token"); code != http.StatusForbidden {
		t.Fatalf("got %d, want 403", code)
	}
}

func TestReviewErrorsAreServerErrorsAndNotCached(t *testing.T) {
	f := newFixture(t)
	f.api.err = errors.New("connection refused")
	for range 2 {
		if code := f.get("Bearer scraper-token"); code != http.StatusInternalServerError {
			t.Fatalf("got %d, want 500", code)
		}
	}
	if len(f.api.tokenReq) != 2 {
		t.Fatalf("a failed TokenReview was cached: %d reviews", len(f.api.tokenReq))
	}
	// The token is known now; the access review fails.
	f.api.err = nil
	f.get("Bearer scraper-token")
	f.clock = f.clock.Add(time.Second)
	f.guard.decision = ttlCache[bool]{}
	f.api.err = errors.New("connection refused")
	if code := f.get("Bearer scraper-token"); code != http.StatusInternalServerError {
		t.Fatalf("failed SubjectAccessReview: got %d, want 500", code)
	}
	if f.served != 1 {
		t.Fatalf("served %d", f.served)
	}
}

func TestAccessKeySeparatesEveryField(t *testing.T) {
	base := &authnv1.UserInfo{Username: "u", UID: "1", Groups: []string{"a", "b"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}}
	variants := []*authnv1.UserInfo{
		{Username: "u", UID: "1", Groups: []string{"a\x00b"}, Extra: base.Extra},
		{Username: "u", UID: "1", Groups: []string{"a"}, Extra: map[string]authnv1.ExtraValue{"b": {}, "k": {"v"}}},
		{Username: "u", UID: "2", Groups: base.Groups, Extra: base.Extra},
		{Username: "u", UID: "1", Groups: base.Groups, Extra: map[string]authnv1.ExtraValue{"k": {"w"}}},
		{Username: "u", UID: "1", Groups: base.Groups},
	}
	want := accessKey(base, "get", "/metrics")
	if accessKey(&authnv1.UserInfo{Username: "u", UID: "1", Groups: []string{"a", "b"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}}, "get", "/metrics") != want {
		t.Fatal("the same question has two keys")
	}
	for i, v := range variants {
		if accessKey(v, "get", "/metrics") == want {
			t.Errorf("variant %d shares the key of %+v", i, base)
		}
	}
	if accessKey(base, "post", "/metrics") == want || accessKey(base, "get", "/metrics/extra") == want {
		t.Error("verb or path not in the key")
	}
}

func TestCacheIsBounded(t *testing.T) {
	var c ttlCache[bool]
	now := time.Unix(0, 0)
	for i := range 3 * maxEntries {
		c.put(fmt.Sprint(i), true, now, time.Hour)
		if len(c.entries) > maxEntries || c.order.Len() != len(c.entries) {
			t.Fatalf("%d entries (%d in order) after %d puts", len(c.entries), c.order.Len(), i+1)
		}
	}
	// The least recently used entry goes, not everything.
	c = ttlCache[bool]{}
	for i := range maxEntries {
		c.put(fmt.Sprint(i), true, now, time.Hour)
	}
	c.get("0", now)
	c.put("new", true, now, time.Hour)
	if _, ok := c.get("0", now); !ok {
		t.Error("a recently used entry was evicted")
	}
	if _, ok := c.get("1", now); ok {
		t.Error("the least recently used entry was kept")
	}
	if len(c.entries) != maxEntries {
		t.Errorf("%d entries", len(c.entries))
	}
	// Expired entries are never returned.
	if _, ok := c.get("new", now.Add(2*time.Hour)); ok {
		t.Error("an expired entry was returned")
	}
}

// Issue 17 defect 11: a flood of invalid tokens neither evicts the
// scraper's cached answers nor costs it a review, and many requests with one
// new token at once cost one TokenReview.
func TestInvalidTokenFloodKeepsTheScraper(t *testing.T) {
	f := newFixture(t)
	if code := f.get("Bearer scraper-token"); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	for i := range 3 * maxEntries {
		if code := f.get(fmt.Sprintf("Bearer forged-%d", i)); code != http.StatusUnauthorized {
			t.Fatalf("got %d, want 401", code)
		}
	}
	before := f.counts()
	if code := f.get("Bearer scraper-token"); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	if got := f.counts(); got.tokens != before.tokens || got.access != before.access {
		t.Errorf("the scraper was reviewed again after the flood: %+v -> %+v", before, got)
	}
}

func TestConcurrentRequestsShareOneReview(t *testing.T) {
	api := &slowAPI{release: make(chan struct{})}
	g := New(api, fakeAccess{&fakeAPI{allowed: map[string]bool{"u": true}}})
	h, _ := g.Filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Authorization", "Bearer new-token")
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the requests pile up behind the first review
	close(api.release)
	wg.Wait()
	if n := api.tokenReviews.Load(); n != 1 {
		t.Errorf("%d TokenReviews for one token", n)
	}
}

// slowAPI holds every review until released, then accepts the token.
type slowAPI struct {
	release      chan struct{}
	tokenReviews atomic.Int32
}

func (a *slowAPI) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	a.tokenReviews.Add(1)
	<-a.release
	out := tr.DeepCopy()
	out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "u"}}
	return out, nil
}

// Package metricsauth guards the operator's metrics endpoint: a request must
// carry a bearer token that the API server authenticates (TokenReview), and
// the token's user must be allowed the request's verb on its path, as a
// non-resource URL (SubjectAccessReview). It is what controller-runtime's
// filters.WithAuthenticationAndAuthorization does, with the same responses
// and cache lifetimes, without linking the API server's libraries into the
// operator: they doubled the binary's mapped text and data, a third of the
// operator's resident memory (decision 52).
package metricsauth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Cache lifetimes, as controller-runtime's filter has them: an
// authenticated token for a minute, an allowed request for five, a denied
// one for thirty seconds (so a new RoleBinding takes effect quickly).
const (
	TokenTTL      = time.Minute
	AllowTTL      = 5 * time.Minute
	DenyTTL       = 30 * time.Second
	reviewTimeout = 10 * time.Second
	// maxEntries bounds each cache: scrapers are few, and a flood of
	// invalid tokens must not grow the operator's memory.
	maxEntries = 1024
)

// TokenReviewer is the part of the API server's TokenReview client the
// filter uses.
type TokenReviewer interface {
	Create(ctx context.Context, tr *authnv1.TokenReview, opts metav1.CreateOptions) (*authnv1.TokenReview, error)
}

// AccessReviewer is the part of the API server's SubjectAccessReview client
// the filter uses.
type AccessReviewer interface {
	Create(ctx context.Context, sar *authzv1.SubjectAccessReview, opts metav1.CreateOptions) (*authzv1.SubjectAccessReview, error)
}

// FilterProvider is a metricsserver.Options.FilterProvider that reviews
// with the manager's own credentials (RBAC: create tokenreviews and
// subjectaccessreviews).
func FilterProvider(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authnclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	authz, err := authzclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	g := New(authn.TokenReviews(), authz.SubjectAccessReviews())
	return g.Filter, nil
}

// Guard authenticates and authorizes requests, caching both answers.
type Guard struct {
	tokens TokenReviewer
	access AccessReviewer
	now    func() time.Time

	// users holds accepted tokens and rejected holds the rest, apart, so
	// that a flood of invalid tokens never evicts a scraper's entry.
	users    ttlCache[*authnv1.UserInfo]
	rejected ttlCache[struct{}]
	decision ttlCache[bool]
	// flights coalesces identical reviews made at the same time (many
	// requests with one new token cost one TokenReview).
	flights singleflight.Group
}

// New returns a Guard that asks tokens and access.
func New(tokens TokenReviewer, access AccessReviewer) *Guard {
	return &Guard{tokens: tokens, access: access, now: time.Now}
}

// Filter is a metricsserver.Filter.
func (g *Guard) Filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, err := g.authenticate(req)
		if err != nil {
			log.Error(err, "Authentication failed")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		}
		if user == nil {
			log.V(4).Info("Authentication failed")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		allowed, err := g.authorize(req.Context(), user, strings.ToLower(req.Method), req.URL.Path)
		if err != nil {
			msg := fmt.Sprintf("Authorization for user %s failed", user.Username)
			log.Error(err, msg)
			http.Error(w, msg, http.StatusInternalServerError)
			return
		}
		if !allowed {
			msg := fmt.Sprintf("Authorization denied for user %s", user.Username)
			log.V(4).Info(msg)
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// authenticate returns the user the request's bearer token belongs to, nil
// if it has none or the API server does not accept it. The token is removed
// from the request: the handler behind has no use for it.
func (g *Guard) authenticate(req *http.Request) (*authnv1.UserInfo, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, nil
	}
	req.Header.Del("Authorization")
	// Keyed by the token's hash: the cache holds no credentials.
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	if user, ok := g.users.get(key, g.now()); ok {
		return user, nil
	}
	if _, ok := g.rejected.get(key, g.now()); ok {
		return nil, nil
	}
	v, err, _ := g.flights.Do("t"+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), reviewTimeout)
		defer cancel()
		review, err := g.tokens.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("TokenReview: %w", err)
		}
		if !review.Status.Authenticated {
			g.rejected.put(key, struct{}{}, g.now(), TokenTTL)
			return (*authnv1.UserInfo)(nil), nil
		}
		user := &review.Status.User
		g.users.put(key, user, g.now(), TokenTTL)
		return user, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*authnv1.UserInfo), nil
}

// authorize asks whether user may make the request verb on the non-resource
// path.
func (g *Guard) authorize(ctx context.Context, user *authnv1.UserInfo, verb, path string) (bool, error) {
	key := accessKey(user, verb, path)
	if allowed, ok := g.decision.get(key, g.now()); ok {
		return allowed, nil
	}
	v, err, _ := g.flights.Do("a"+key, func() (any, error) {
		return g.review(context.WithoutCancel(ctx), key, user, verb, path)
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// review makes one SubjectAccessReview and caches its answer.
func (g *Guard) review(ctx context.Context, key string, user *authnv1.UserInfo, verb, path string) (bool, error) {
	extra := make(map[string]authzv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	review, err := g.access.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:                  user.Username,
		UID:                   user.UID,
		Groups:                user.Groups,
		Extra:                 extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	allowed := review.Status.Allowed && !review.Status.Denied
	ttl := DenyTTL
	if allowed {
		ttl = AllowTTL
	}
	g.decision.put(key, allowed, g.now(), ttl)
	return allowed, nil
}

// accessKey identifies a question to the authorizer: everything the review
// sends, unambiguously joined.
func accessKey(user *authnv1.UserInfo, verb, path string) string {
	parts := []string{user.Username, user.UID, verb, path, fmt.Sprint(len(user.Groups))}
	parts = append(parts, user.Groups...)
	keys := make([]string, 0, len(user.Extra))
	for k := range user.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k, fmt.Sprint(len(user.Extra[k])))
		parts = append(parts, user.Extra[k]...)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return string(sum[:])
}

// ttlCache is a bounded map whose entries expire. When it is full, the
// least recently used entry goes (an expired one is never returned anyway).
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]*list.Element // of *ttlEntry[V]
	order   list.List                // most recently used first
}

type ttlEntry[V any] struct {
	key     string
	value   V
	expires time.Time
}

func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*ttlEntry[V])
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, key)
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

func (c *ttlCache[V]) put(key string, v V, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*list.Element{}
	}
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*ttlEntry[V])
		e.value, e.expires = v, now.Add(ttl)
		c.order.MoveToFront(el)
		return
	}
	if len(c.entries) >= maxEntries {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*ttlEntry[V]).key)
	}
	c.entries[key] = c.order.PushFront(&ttlEntry[V]{key: key, value: v, expires: now.Add(ttl)})
}

// Package oidcprovider watches the cluster's IAM OIDC identity provider: does
// it exist, and which audiences (client IDs) does it accept. A role whose
// trust names a provider that IAM does not have, or an audience it does not
// list, can be assumed by nobody, so a binding is Ready only when both hold.
// The provider is read once at start-up and then periodically, never per
// binding.
package oidcprovider

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/podidentity/podidentity-operator/internal/awsiam"
)

// State is what the last read of the provider found.
type State struct {
	// ARN of the provider.
	ARN string
	// Known is true once a read answered (the provider exists or IAM said
	// it does not).
	Known bool
	// Exists and Audiences are the answer.
	Exists    bool
	Audiences []string
	// Err is the error of the last read when it did not answer: Rejected
	// when IAM refused it (for example AccessDenied), otherwise transient.
	Err      error
	Rejected bool
}

// Accepts reports whether the provider lists the audience.
func (s State) Accepts(audience string) bool { return slices.Contains(s.Audiences, audience) }

func (s State) same(o State) bool {
	return s.ARN == o.ARN && s.Known == o.Known && s.Exists == o.Exists && slices.Equal(s.Audiences, o.Audiences) &&
		s.Rejected == o.Rejected && (s.Err == nil) == (o.Err == nil)
}

// API is the IAM call the watcher makes.
type API interface {
	GetOpenIDConnectProvider(ctx context.Context, in *iam.GetOpenIDConnectProviderInput, optFns ...func(*iam.Options)) (*iam.GetOpenIDConnectProviderOutput, error)
}

// Watcher reads the provider every Interval (every RetryInterval while reads
// fail) and sends an event on Changes whenever what it knows changes.
type Watcher struct {
	IAM           API
	ARN           string
	Interval      time.Duration
	RetryInterval time.Duration
	Log           logr.Logger

	mu      sync.RWMutex
	state   State
	changes chan event.GenericEvent
}

// NewWatcher returns a watcher for the provider.
func NewWatcher(api API, providerARN string, interval time.Duration, log logr.Logger) *Watcher {
	return &Watcher{IAM: api, ARN: providerARN, Interval: interval, RetryInterval: 10 * time.Second, Log: log,
		state: State{ARN: providerARN}, changes: make(chan event.GenericEvent, 1)}
}

// State is the latest state.
func (w *Watcher) State() State {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.state
}

// Changes receives an event each time the state changes; the binding
// controller re-reconciles every binding on it.
func (w *Watcher) Changes() <-chan event.GenericEvent { return w.changes }

// Check reads the provider once and records the result. A transient failure
// keeps what an earlier read answered.
func (w *Watcher) Check(ctx context.Context) State {
	next := State{ARN: w.ARN}
	out, err := w.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(w.ARN)})
	switch {
	case err == nil:
		next.Known, next.Exists = true, true
		next.Audiences = slices.Sorted(slices.Values(out.ClientIDList))
	case awsiam.IsNotFound(err):
		next.Known = true
	case awsiam.Classify(err) == awsiam.Terminal:
		next.Err, next.Rejected = err, true
	default:
		prev := w.State()
		if prev.Known {
			// Keep the last answer through an outage.
			prev.Err = nil
			next = prev
		} else {
			next.Err = err
		}
	}
	w.mu.Lock()
	changed := !w.state.same(next)
	w.state = next
	w.mu.Unlock()
	if changed {
		w.Log.Info("OIDC identity provider", "arn", w.ARN, "exists", next.Exists, "audiences", next.Audiences, "error", next.Err)
		select {
		case w.changes <- event.GenericEvent{}:
		default: // one pending event is enough: it re-reconciles every binding
		}
	}
	return next
}

// Start re-reads the provider until ctx ends (a manager Runnable).
func (w *Watcher) Start(ctx context.Context) error {
	for {
		wait := w.Interval
		if s := w.State(); !s.Known || s.Err != nil {
			wait = w.RetryInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
			w.Check(ctx)
		}
	}
}

// NeedLeaderElection is false: every replica reports the same state.
func (w *Watcher) NeedLeaderElection() bool { return false }

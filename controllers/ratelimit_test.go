package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// After any number of failures a binding is retried within the cap, so after
// an IAM outage every binding is back within one cap of IAM's recovery.
func TestFailureBackoffIsCapped(t *testing.T) {
	rl := failureRateLimiter(time.Minute)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "b"}}
	var last time.Duration
	for range 40 {
		last = rl.When(req)
	}
	if last > time.Minute || last < 30*time.Second {
		t.Errorf("back-off after 40 failures = %s, want the 1m cap", last)
	}
	rl.Forget(req)
	if d := rl.When(req); d > time.Second {
		t.Errorf("back-off after success = %s", d)
	}
}

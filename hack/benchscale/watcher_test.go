package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// The floor watcher (-fairness-floor-watcher) receives every event of a
// storm of the copied CRD's bindings: the floor it measures includes
// decoding them. Read back: the events it counted, against the creates
// and deletes made through the API server.
func TestFloorWatcherReceivesTheStorm(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through `make test`")
	}
	env, err := testenv.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	if err := installUnwatchedCRD(env); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := unwatchedCopy(binding("default", "template"))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var events atomic.Int64
	synced := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- watchStorm(ctx, cfg, &events, func() { close(synced) }) }()
	select {
	case <-synced:
	case err := <-done:
		t.Fatalf("the floor watcher stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the floor watcher did not sync")
	}
	const n = 10
	for i := range n {
		u := tmpl.DeepCopy()
		u.SetName(fmt.Sprintf("s-%d", i))
		if err := k8s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Delete(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for events.Load() < 2*n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := events.Load(); got != 2*n {
		t.Errorf("the floor watcher received %d events, want %d (a create and a delete of each of %d copies)", got, 2*n, n)
	}
}

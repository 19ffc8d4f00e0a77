package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestMain: startFloorWatcher runs the binary it is in as the floor
// watcher, here the test binary, as the bench binary runs itself.
func TestMain(m *testing.M) {
	if asFloorWatcher() {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The floor watcher (-fairness-floor-watcher) receives every event of a
// storm of the copied CRD's bindings: the floor it measures includes
// decoding them. Read back: the events its informer counted, against the
// creates and deletes made through the API server; and the process the
// bench starts (startFloorWatcher) syncs, receives the storm and reports
// its count when stopped.
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
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if _, err := testenv.AdminKubeconfig(env, "floor-watcher", kubeconfig); err != nil {
		t.Fatal(err)
	}
	proc, err := startFloorWatcher(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.cmd.Process.Kill() }) // stopped below unless the test fails first
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
	// The process's count cannot be watched while it runs; once the
	// informer above has every event, the process has at least one.
	got, err := proc.stop()
	if err != nil || got < 1 || got > 2*n {
		t.Errorf("the floor watcher process: %d events, exit %v; want 1 to %d and a clean exit on SIGTERM", got, err, 2*n)
	}
}

// -fairness-floor-watcher without the storm it watches is refused before
// anything starts.
func TestFloorWatcherNeedsTheUnwatchedStorm(t *testing.T) {
	defer func(w bool, s string) { *floorWatch, *fairStorm = w, s }(*floorWatch, *fairStorm)
	*floorWatch, *fairStorm = true, "bindings"
	// Were the flags let through, the bench would stop at once here.
	t.Setenv("MOTO_SERVER", filepath.Join(t.TempDir(), "no-moto"))
	_, err := run()
	if err == nil || !strings.Contains(err.Error(), "-fairness-floor-watcher needs -fairness-storm unwatched-bindings") {
		t.Errorf("run() = %v; want the flags refused", err)
	}
}

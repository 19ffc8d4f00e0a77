package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// floorWatcherEnv, set to a kubeconfig, makes the bench binary a bare
// watcher of the storm's unwatched bindings (-fairness-floor-watcher)
// instead of the bench.
const floorWatcherEnv = "BENCHSCALE_FLOOR_WATCHER_KUBECONFIG"

// asFloorWatcher runs the binary as a floor watcher when floorWatcherEnv is
// set (startFloorWatcher starts it so), and reports whether it did.
func asFloorWatcher() bool {
	kc := os.Getenv(floorWatcherEnv)
	if kc == "" {
		return false
	}
	if err := floorWatcher(kc); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale floor watcher:", err)
		os.Exit(1)
	}
	return true
}

// floorWatcher runs the bench binary as a floor watcher (floorWatcherEnv):
// it prints "synced" once its informer has listed, then runs until SIGTERM
// and prints how many events it received.
func floorWatcher(kubeconfig string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	var events atomic.Int64
	if err := watchStorm(ctx, cfg, &events, func() { fmt.Println("synced") }); err != nil {
		return err
	}
	fmt.Printf("events %d\n", events.Load())
	return nil
}

// watchStorm is what any controller of bindings does with a storm before
// it does anything of its own: an informer of the copied CRD's bindings,
// on a client configured as the operator's (no gzip), that decodes every
// event into a typed binding and caches it, counting them in events. It
// calls synced once the informer has listed, and returns when ctx ends.
func watchStorm(ctx context.Context, cfg *rest.Config, events *atomic.Int64, synced func()) error {
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	cfg.QPS, cfg.Burst = 500, 1000
	gv := schema.GroupVersion{Group: unwatchedGroup, Version: v1alpha1.GroupVersion.Version}
	scheme := k8sruntime.NewScheme()
	scheme.AddKnownTypes(gv, &v1alpha1.PodIdentityBinding{}, &v1alpha1.PodIdentityBindingList{})
	metav1.AddToGroupVersion(scheme, gv)
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.PodIdentityBinding{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	count := func(any) { events.Add(1) }
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: count, DeleteFunc: count, UpdateFunc: func(_, o any) { count(o) },
	}); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("the floor watcher's cache did not sync")
	}
	synced()
	<-ctx.Done()
	return nil
}

// watcherProc is a running floor watcher.
type watcherProc struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// startFloorWatcher starts the bench binary as a floor watcher and waits
// until its informer has synced.
func startFloorWatcher(kubeconfig string) (*watcherProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorWatcherEnv+"="+kubeconfig)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &watcherProc{cmd: cmd, out: bufio.NewScanner(stdout)}
	synced := make(chan bool, 1)
	go func() { synced <- w.out.Scan() && w.out.Text() == "synced" }()
	select {
	case ok := <-synced:
		if ok {
			return w, nil
		}
	case <-time.After(time.Minute):
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("the floor watcher did not sync")
}

// stop ends the watcher and returns the events it received.
func (w *watcherProc) stop() (int64, error) {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	var n int64
	for w.out.Scan() {
		if s, ok := strings.CutPrefix(w.out.Text(), "events "); ok {
			_, _ = fmt.Sscan(s, &n)
		}
	}
	return n, w.cmd.Wait()
}

package testenv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ClusterControllers are the kube-controller-manager controllers a test
// cluster runs: what makes envtest's API server behave like a cluster for
// this operator (namespace deletion, garbage collection by owner reference,
// Deployments making ReplicaSets making pods, ServiceAccounts and their token
// Secrets). Pods never run: there is no scheduler or kubelet.
var ClusterControllers = []string{
	"namespace-controller", "garbage-collector-controller", "deployment-controller", "replicaset-controller",
	"statefulset-controller", "daemonset-controller", "serviceaccount-controller", "serviceaccount-token-controller",
}

// ControllerManager is a running kube-controller-manager.
type ControllerManager struct {
	cmd     *exec.Cmd
	done    chan struct{}
	dir     string
	LogPath string
}

// StartControllerManager runs kube-controller-manager from
// KUBEBUILDER_ASSETS (hack/envtest-assets.sh builds it from the same
// Kubernetes version as the API server) against env's API server, as a
// system:masters user, with ClusterControllers, and waits until its health
// check passes. It signs token Secrets with the API server's service
// account key, so their tokens authenticate.
func StartControllerManager(env *envtest.Environment) (*ControllerManager, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kube-controller-manager is not in KUBEBUILDER_ASSETS (%s): run hack/envtest-assets.sh: %w", assets, err)
	}
	apiServer := env.ControlPlane.GetAPIServer()
	if apiServer.CertDir == "" {
		return nil, errors.New("the API server has not started")
	}
	dir, err := os.MkdirTemp("", "kcm-")
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if _, err := AdminKubeconfig(env, "kube-controller-manager", kubeconfig); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--leader-elect=false",
		"--controllers=" + strings.Join(ClusterControllers, ","),
		"--service-account-private-key-file=" + filepath.Join(apiServer.CertDir, "sa-signer.key"),
		"--use-service-account-credentials=false",
		// Tests delete and create quickly: react without the default delays.
		"--concurrent-gc-syncs=5",
		"--concurrent-namespace-syncs=5",
	}
	logs, err := os.Create(filepath.Join(dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cm := &ControllerManager{cmd: cmd, done: make(chan struct{}), dir: dir, LogPath: logs.Name()}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		_ = logs.Close()
		close(cm.done)
		exited <- err
	}()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // its own self-signed serving certificate, on loopback
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logs.Name())
			return nil, fmt.Errorf("kube-controller-manager exited: %v\n%s", err, tail(string(out), 4000))
		default:
		}
		if resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port)); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cm, nil
			}
		}
		if time.Now().After(deadline) {
			cm.Stop()
			out, _ := os.ReadFile(logs.Name())
			return nil, fmt.Errorf("kube-controller-manager not healthy after 60s:\n%s", tail(string(out), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the controller manager and removes its files.
func (c *ControllerManager) Stop() {
	if c == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	_ = os.RemoveAll(c.dir)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

package e2e_test

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestDockerfileBuildsFromItsContext runs the Dockerfile's build stage as
// `docker build .` would, without a Docker engine (none here): a workspace
// that holds only what its COPY lines copy from the build context (less
// .dockerignore), its ARGs, WORKDIR and RUN lines in order, in a shell.
// The binary must build there and report the version passed as VERSION,
// and the final stage must copy that binary and run it. It fails on an
// instruction it does not know, so a new one is looked at here first.
//
// (Before this test the build stage did not copy cmd/, which main.go
// imports: `make cross-build` builds in the checkout and could not see it.)
func TestDockerfileBuildsFromItsContext(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := dockerignore(t, root)
	stages := dockerStages(string(raw))
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a final stage, the Dockerfile has %d", len(stages))
	}

	ctxDir := t.TempDir() // the container's file system root
	workdir := "/"
	// The golang image's Go, here this machine's, with its module proxy
	// and caches.
	env := os.Environ()
	// docker build --build-arg VERSION=... for this platform (buildx sets
	// TARGETOS and TARGETARCH).
	args := map[string]string{"VERSION": "9.9.9-docker", "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH}
	for _, in := range stages[0].instructions {
		switch in.op {
		case "ARG":
			name, def, _ := strings.Cut(in.rest, "=")
			if _, given := args[name]; !given {
				args[name] = def
			}
		case "WORKDIR":
			workdir = path.Join(workdir, in.rest)
			if err := os.MkdirAll(filepath.Join(ctxDir, workdir), 0o755); err != nil {
				t.Fatal(err)
			}
		case "COPY":
			fields := strings.Fields(in.rest)
			dst := fields[len(fields)-1]
			if !path.IsAbs(dst) {
				dst = path.Join(workdir, dst)
			}
			for _, src := range fields[:len(fields)-1] {
				copyContext(t, root, src, filepath.Join(ctxDir, dst), strings.HasSuffix(fields[len(fields)-1], "/") || len(fields) > 2, ignored)
			}
		case "RUN":
			cmd := exec.Command("sh", "-c", in.rest)
			cmd.Dir = filepath.Join(ctxDir, workdir)
			cmd.Env = env
			for k, v := range args {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("RUN %s (in a workspace of what the Dockerfile copies): %v\n%s", in.rest, err, tail(string(out), 3000))
			}
		default:
			t.Fatalf("the build stage's %s: this test does not know it", in.op)
		}
	}

	// The final stage copies the build stage's binary and runs it.
	var entry string
	for _, in := range stages[1].instructions {
		switch in.op {
		case "COPY":
			fields := strings.Fields(in.rest)
			if len(fields) != 3 || fields[0] != "--from="+stages[0].name {
				t.Fatalf("the final stage's COPY %s: want one file from the build stage", in.rest)
			}
			built := filepath.Join(ctxDir, fields[1])
			out, err := exec.Command(built, "--version").Output()
			if err != nil || !slices.Contains(strings.Split(string(out), "\n"), "podidentity-operator "+args["VERSION"]) {
				t.Errorf("%s --version: %q %v; want the VERSION build argument", fields[1], out, err)
			}
			entry = path.Join("/", path.Base(fields[1]))
		case "ENTRYPOINT":
			if want := `["` + entry + `"]`; in.rest != want {
				t.Errorf("ENTRYPOINT %s; the binary is copied to %s", in.rest, entry)
			}
		case "WORKDIR", "USER":
		default:
			t.Fatalf("the final stage's %s: this test does not know it", in.op)
		}
	}
	if entry == "" {
		t.Error("the final stage copies no binary")
	}
}

type dockerInstruction struct{ op, rest string }

type dockerStage struct {
	name         string
	instructions []dockerInstruction
}

// dockerStages splits a Dockerfile into stages (FROM ... [AS name]), with
// comments dropped and continued lines joined.
func dockerStages(file string) []dockerStage {
	file = strings.ReplaceAll(file, "\\\n", " ")
	var stages []dockerStage
	for _, line := range strings.Split(file, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		op, rest = strings.ToUpper(op), strings.Join(strings.Fields(rest), " ")
		if op == "FROM" {
			s := dockerStage{}
			if m := regexp.MustCompile(`(?i)\sAS\s+(\S+)$`).FindStringSubmatch(rest); m != nil {
				s.name = m[1]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, dockerInstruction{op, rest})
		}
	}
	return stages
}

// dockerignore is .dockerignore's patterns.
func dockerignore(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.TrimSuffix(l, "/"))
		}
	}
	return out
}

// copyContext copies src of the build context (a file or a directory's
// contents) to dst as COPY does, leaving out what .dockerignore matches.
func copyContext(t *testing.T, root, src, dst string, intoDir bool, ignored []string) {
	t.Helper()
	skip := func(rel string) bool {
		for _, p := range ignored {
			if ok, _ := path.Match(p, rel); ok {
				return true
			}
			if ok, _ := path.Match(p, path.Base(rel)); ok && !strings.Contains(p, "/") {
				return true
			}
		}
		return false
	}
	from := filepath.Join(root, filepath.FromSlash(src))
	info, err := os.Stat(from)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if !info.IsDir() {
		if intoDir {
			dst = filepath.Join(dst, filepath.Base(from))
		}
		copyFile(t, from, dst)
		return
	}
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		inDir, _ := filepath.Rel(from, p)
		copyFile(t, p, filepath.Join(dst, inDir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// The README's `docker build -f bundle/bundle.Dockerfile bundle/`: every
// COPY source is in that context, and the image is the bundle as is.
func TestBundleDockerfileCopiesFromItsContext(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "bundle", "bundle.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(string(raw))
	if len(stages) != 1 {
		t.Fatalf("want one stage, the bundle's Dockerfile has %d", len(stages))
	}
	copied := map[string]bool{}
	for _, in := range stages[0].instructions {
		switch in.op {
		case "COPY":
			fields := strings.Fields(in.rest)
			if len(fields) != 2 || "/"+fields[0]+"/" != fields[1] {
				t.Errorf("COPY %s: want a directory of the bundle at the image's root", in.rest)
				continue
			}
			if info, err := os.Stat(filepath.Join(root, "bundle", fields[0])); err != nil || !info.IsDir() {
				t.Errorf("COPY %s: no directory bundle/%s (%v)", in.rest, fields[0], err)
			}
			copied[fields[0]] = true
		case "LABEL":
		default:
			t.Fatalf("the bundle's Dockerfile's %s: this test does not know it", in.op)
		}
	}
	if !copied["manifests"] || !copied["metadata"] {
		t.Errorf("the bundle image copies %v; want manifests and metadata", copied)
	}
}

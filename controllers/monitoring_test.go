package controllers_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/gomega"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// exportedMetrics are the metric families in a Prometheus text exposition,
// histogram and summary series names included.
func exportedMetrics(body string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	return names
}

// monitoringQueries parses config/prometheus/rules.yaml with Prometheus' own
// rule parser (which also parses each expression) and the Grafana
// dashboard's targets, and returns every query.
func monitoringQueries() []string {
	root, err := testenv.RepoRoot()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var rule struct {
		Spec json.RawMessage `json:"spec"`
	}
	ExpectWithOffset(1, yaml.Unmarshal(raw, &rule)).To(Succeed())
	spec, err := yaml.JSONToYAML(rule.Spec)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
	ExpectWithOffset(1, errs).To(BeEmpty())
	var queries []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			ExpectWithOffset(1, r.Alert).NotTo(BeEmpty())
			queries = append(queries, r.Expr)
		}
	}
	ExpectWithOffset(1, queries).NotTo(BeEmpty())

	raw, err = os.ReadFile(filepath.Join(root, "config", "components", "grafana-dashboard", "podidentity-operator.json"))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	ExpectWithOffset(1, json.Unmarshal(raw, &dash)).To(Succeed())
	ExpectWithOffset(1, dash.Panels).NotTo(BeEmpty())
	for _, p := range dash.Panels {
		ExpectWithOffset(1, p.Targets).NotTo(BeEmpty(), p.Title)
		for _, t := range p.Targets {
			queries = append(queries, t.Expr)
		}
	}
	return queries
}

// queriedMetrics are the metric names a PromQL expression selects.
func queriedMetrics(expr string) []string {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	ExpectWithOffset(1, names).NotTo(BeEmpty(), expr)
	return names
}

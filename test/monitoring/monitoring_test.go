// Package monitoring tests the Grafana dashboard and Prometheus rules in
// deploy/ against the metrics the plugin exports, with promtool, and lints
// a live server's /metrics.
package monitoring

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// metricFiles declare every collector the plugin registers.
var metricFiles = []string{"plugin/bluegreen/metrics.go", "plugin/bluegreen/state/metrics.go"}

// exported returns the full names of the metrics declared in metricFiles:
// the Namespace (plugin.Namespace, "coredns"), Subsystem and Name of every
// prometheus.*Opts literal.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, f := range metricFiles {
		file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(harness.Root(), f), nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := cl.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			parts := map[string]string{}
			for _, e := range cl.Elts {
				kv := e.(*ast.KeyValueExpr)
				key := kv.Key.(*ast.Ident).Name
				switch v := kv.Value.(type) {
				case *ast.BasicLit:
					parts[key], _ = strconv.Unquote(v.Value)
				case *ast.SelectorExpr:
					require.Equal(t, "plugin.Namespace", fmt.Sprintf("%s.%s", v.X, v.Sel), "%s: %s", f, key)
					parts[key] = "coredns"
				}
			}
			require.NotEmpty(t, parts["Name"], "%s: a metric without a name", f)
			names[parts["Namespace"]+"_"+parts["Subsystem"]+"_"+parts["Name"]] = true
			return true
		})
	}
	require.GreaterOrEqual(t, len(names), 7, "the SPEC's seven metrics at least: %v", names)
	for _, n := range []string{"answers_total", "weight", "share", "pool_healthy", "changes_total", "store_errors_total", "zone_reloads_total", "rollout_paused"} {
		require.True(t, names["coredns_bluegreen_"+n], "metric %s not found in %v", n, metricFiles)
	}
	return names
}

// metricRef finds metric names in PromQL: identifiers that start with
// coredns_ or are recording rules (level:metric:operations).
var metricRef = regexp.MustCompile(`\b(coredns_[a-z0-9_]+|[a-z_]+:[a-z0-9_:]+)\b`)

func refs(expr string) []string {
	var out []string
	for _, m := range metricRef.FindAllString(expr, -1) {
		out = append(out, m)
	}
	return out
}

func root(parts ...string) string {
	return filepath.Join(append([]string{harness.Root()}, parts...)...)
}

// promtool runs promtool with args in dir and returns its output, failing
// the test when it fails.
func promtool(t *testing.T, dir string, stdin io.Reader, args ...string) string {
	t.Helper()
	bin := harness.NeedTool(t, "promtool")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record"`
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestPrometheusRules(t *testing.T) {
	dir := root("deploy", "prometheus")
	out := promtool(t, dir, nil, "check", "rules", "bluegreen-rules.yml")
	assert.Contains(t, out, "SUCCESS")
	out = promtool(t, dir, nil, "test", "rules", "bluegreen-rules_test.yml")
	assert.Contains(t, out, "SUCCESS")

	b, err := os.ReadFile(filepath.Join(dir, "bluegreen-rules.yml"))
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(b, &rf))
	names := exported(t)
	records := map[string]bool{}
	alerts := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, m := range refs(r.Expr) {
				assert.True(t, names[m] || records[m], "rule %s%s uses %s, which the plugin does not export", r.Record, r.Alert, m)
			}
			if r.Alert != "" {
				alerts[r.Alert] = r.For
				assert.NotEmpty(t, r.Labels["severity"], "alert %s has no severity", r.Alert)
				assert.NotEmpty(t, r.Annotations["summary"], "alert %s has no summary", r.Alert)
			}
		}
	}
	for _, r := range []string{"bluegreen:answers:rate5m", "bluegreen:observed_share:rate5m", "bluegreen:share_deviation:rate5m"} {
		assert.True(t, records[r], "recording rule %s", r)
	}
	// The alerts, with their holds.
	for name, hold := range map[string]string{
		"BluegreenPoolUnhealthy": "1m", "BluegreenStoreErrors": "", "BluegreenZoneReloadFailed": "",
		"BluegreenShareFarFromWeight": "10m", "BluegreenRolloutPaused": "1h",
	} {
		got, ok := alerts[name]
		if assert.True(t, ok, "alert %s missing", name) {
			assert.Equal(t, hold, got, "alert %s: for", name)
		}
	}

	// Every alert has a unit test that fires it and one that does not.
	tb, err := os.ReadFile(filepath.Join(dir, "bluegreen-rules_test.yml"))
	require.NoError(t, err)
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(tb, &tf))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for name := range alerts {
		assert.True(t, fires[name], "no test where %s fires", name)
		assert.True(t, quiet[name], "no test where %s stays quiet", name)
	}
}

type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // rows
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(root("deploy", "grafana", "bluegreen.json"))
	require.NoError(t, err)
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	require.NoError(t, dec.Decode(&d), "valid JSON")
	assert.False(t, dec.More(), "one JSON value")
	assert.NotEmpty(t, d.Title)
	assert.NotEmpty(t, d.UID)
	assert.GreaterOrEqual(t, d.SchemaVersion, 36, "schemaVersion set (36+: datasources as {type, uid})")

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "switch" {
			require.NotNil(t, v.Datasource)
			assert.Equal(t, "${datasource}", v.Datasource.UID, "the switch variable queries the chosen data source")
			assert.Contains(t, string(v.Query), "label_values(coredns_bluegreen_weight, switch)")
		}
	}
	assert.Equal(t, "datasource", vars["datasource"], "data source as a variable")
	assert.Equal(t, "query", vars["switch"], "a switch variable")

	names := exported(t)
	var exprs []string
	titles := map[string]bool{}
	ids := map[int]bool{}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	for _, p := range all {
		if p.Type == "row" {
			continue
		}
		titles[p.Title] = true
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		assert.True(t, p.GridPos.W > 0 && p.GridPos.H > 0 && p.GridPos.X+p.GridPos.W <= 24, "panel %q: gridPos %+v", p.Title, p.GridPos)
		require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.Expr, "panel %q target %s", p.Title, tg.RefID)
			assert.Contains(t, tg.Expr, `switch="$switch"`, "panel %q target %s ignores the switch variable", p.Title, tg.RefID)
			rs := refs(tg.Expr)
			assert.NotEmpty(t, rs, "panel %q: %s names no metric", p.Title, tg.Expr)
			for _, m := range rs {
				assert.True(t, names[m], "panel %q uses %s, which the plugin does not export (only its own metrics, no recording rules)", p.Title, m)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, want := range []string{"Weight share vs observed share", "Answers per second by pool", "Pool health", "Changes by source", "Store errors and stale store", "Zone reloads"} {
		assert.True(t, titles[want], "panel %q missing; have %v", want, keys(titles))
	}

	// Every query parses as PromQL: promtool checks them as recording rules
	// once the Grafana variables are replaced.
	rules := "groups:\n  - name: dashboard\n    rules:\n"
	repl := strings.NewReplacer("$__rate_interval", "1m", "$switch", "example.org")
	for i, e := range exprs {
		q, _ := json.Marshal(repl.Replace(e))
		rules += fmt.Sprintf("      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	require.NoError(t, os.WriteFile(f, []byte(rules), 0o644))
	out := promtool(t, filepath.Dir(f), nil, "check", "rules", f)
	assert.Contains(t, out, fmt.Sprintf("SUCCESS: %d rules found", len(exprs)))
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPromtoolCheckMetrics lints a live server's /metrics after it has
// answered, reloaded a zone and changed weights, so every bluegreen series
// is there.
// onlyWithAnalysis are metrics whose labels name an analysis check: they
// have no series until a rollout with analysis is measured (test/analysis
// checks them then).
var onlyWithAnalysis = map[string]bool{"coredns_bluegreen_analysis_measurements_total": true}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := harness.NeedTool(t, "promtool")
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	dns, api, prom := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	corefile := fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    prometheus 127.0.0.1:%d
    bluegreen {
        pool blue blue.db
        pool green green.db
        base base.db
        weights blue 90 green 10
        admin 127.0.0.1:%d
        reload 1s
    }
}
`, dns, prom, api)
	p := harness.Start(t, dir, corefile)
	p.WaitDNS(fmt.Sprintf("127.0.0.1:%d", dns), "www.example.org", 20*time.Second)
	p.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/healthz", api), 10*time.Second)
	counts := harness.Shares(t, fmt.Sprintf("127.0.0.1:%d", dns), 200)
	require.Equal(t, 200, counts["blue"]+counts["green"], "answers %v", counts)
	code, body := harness.HTTP(t, "PUT", fmt.Sprintf("http://127.0.0.1:%d/v1/switches/example.org/weights", api), `{"weights":{"blue":50,"green":50},"reason":"lint"}`)
	require.Equal(t, 200, code, body)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", prom))
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	for _, m := range keys(exported(t)) {
		if onlyWithAnalysis[m] {
			continue
		}
		assert.Contains(t, string(metrics), "# HELP "+m+" ", "the live server exports %s", m)
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(metrics))
	out, err := cmd.CombinedOutput()
	// promtool prints one line per problem and fails on any, CoreDNS's own
	// metrics included.
	assert.NoError(t, err, "promtool check metrics:\n%s", out)
	assert.NotContains(t, string(out), "bluegreen", "promtool check metrics on the bluegreen metrics")
}

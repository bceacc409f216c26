// Package docs checks the operator docs in docs/: they cover what they
// promise, their numbers are right, and the build steps are the ones
// test/stock runs.
package docs

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/build"
	"github.com/bluegreen-dns/bluegreen/test/harness"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.Root(), "docs", name))
	require.NoError(t, err)
	return string(b)
}

// headings returns the Markdown headings of doc, lower case.
func headings(doc string) []string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "#") {
			out = append(out, strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#"))))
		}
	}
	return out
}

func hasHeading(hs []string, words ...string) bool {
next:
	for _, h := range hs {
		for _, w := range words {
			if !strings.Contains(h, w) {
				continue next
			}
		}
		return true
	}
	return false
}

// TestOperations: the operations guide has its sections, and its margins of
// error are the ones the formula gives.
func TestOperations(t *testing.T) {
	doc := read(t, "operations.md")
	hs := headings(doc)
	for _, want := range [][]string{
		{"before", "cache"},
		{"ttl", "capped"},
		{"ecs", "scope"},
		{"connections"},
		{"troubleshooting", "share"},
	} {
		assert.True(t, hasHeading(hs, want...), "a heading with %q (have %q)", want, hs)
	}
	for _, want := range []string{
		"effective_at", "explain?client=", "coredns_bluegreen_answers_total", "coredns_bluegreen_share",
		"sticky ip", "SCOPE PREFIX-LENGTH", "ttl 30 1",
	} {
		assert.Contains(t, doc, want)
	}
	// 95 % margins at a 10 % share.
	for _, n := range []int{10000, 1000, 100} {
		m := 100 * 1.96 * math.Sqrt(0.1*0.9/float64(n))
		num := strings.NewReplacer("10000", "10,000", "1000", "1,000").Replace(fmt.Sprint(n))
		re := regexp.MustCompile(fmt.Sprintf(`±%.1f points\s+(?:at\s+)?%s`, m, regexp.QuoteMeta(num)))
		assert.Regexp(t, re, doc, "the margin at %d queries is ±%.1f points", n, m)
	}
	// The demo's keep-alive claim is what cmd/demo does.
	src, err := os.ReadFile(filepath.Join(harness.Root(), "cmd/demo/main.go"))
	require.NoError(t, err)
	assert.Contains(t, string(src), "DisableKeepAlives: true")
}

// TestBuildIntoCoreDNS: the documented steps are the ones test/stock runs,
// with the plugin line of SPEC §1 before cache.
func TestBuildIntoCoreDNS(t *testing.T) {
	doc := read(t, "build-into-coredns.md")
	line := build.Directive + ":github.com/bluegreen-dns/bluegreen/plugin/" + build.Directive
	require.Contains(t, doc, line)
	require.Contains(t, doc, "before** `"+build.Before+":"+build.Before+"`")
	stock, err := os.ReadFile(filepath.Join(harness.Root(), "test/stock/stock_test.go"))
	require.NoError(t, err)
	require.Contains(t, string(stock), `"`+line+`"`, "test/stock uses the documented line")
	// The steps in order, each also run by test/stock.
	steps := []struct{ doc, test string }{
		{"v1.15.0", `"v1.15.0"`},
		{"plugin.cfg", `"plugin.cfg"`},
		{"go mod edit -require github.com/bluegreen-dns/bluegreen@v0.0.0", `"-require", "github.com/bluegreen-dns/bluegreen@v0.0.0"`},
		{"-replace github.com/bluegreen-dns/bluegreen=", `"-replace", "github.com/bluegreen-dns/bluegreen="`},
		{"go generate", `"generate"`},
		{"go mod tidy", `"mod", "tidy"`},
		{"go build", `"build", "-o"`},
		{"-plugins", `"-plugins"`},
	}
	last := -1
	for _, s := range steps {
		i := strings.Index(doc, s.doc)
		require.GreaterOrEqual(t, i, 0, "the doc gives %q", s.doc)
		require.Greater(t, i, last, "%q comes after the previous step", s.doc)
		last = i
		require.Contains(t, string(stock), s.test, "test/stock runs %q", s.doc)
	}
}

// TestReadmeReplicas runs the README's three-replica example as a user
// would paste it: etcd, three replicas of the built binary, a promote
// through one and dig against all three.
func TestReadmeReplicas(t *testing.T) {
	for _, tool := range []string{"etcd", "dig", "curl", "bash"} {
		harness.NeedTool(t, tool)
	}
	out := runReadmeSteps(t, "### Several replicas", 90*time.Second)
	assert.Equal(t, "\"blue\"\n\"blue\"\n\"blue\"\n", out, "dig's answers from the three replicas")
}

// TestAPIReference: docs/api.md documents every endpoint and status code of
// SPEC §4, the state object and the security rules; README.md and the
// plugin README point to it.
func TestAPIReference(t *testing.T) {
	doc := read(t, "api.md")
	for _, ep := range []string{
		"`GET /v1/switches`", "`GET /v1/switches/{name}`", "`PUT /v1/switches/{name}/weights`",
		"`POST /v1/switches/{name}/promote`", "`POST /v1/switches/{name}/rollback`",
		"`POST /v1/switches/{name}/rollout`", "`POST /v1/switches/{name}/rollout/pause`",
		"`DELETE /v1/switches/{name}/rollout`", "`GET /v1/switches/{name}/history`",
		"`GET /v1/switches/{name}/explain?client=IP`", "`GET /healthz`",
	} {
		assert.Contains(t, doc, ep)
	}
	for _, code := range []string{"400", "401", "403", "404", "405", "409", "412", "413", "415", "503"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\| `+code+` \|`), doc, "status %s in the error table", code)
	}
	for _, want := range []string{`"effective_at"`, `"version"`, "If-Match", "ETag", "64 KiB", "constant time", "DNS rebinding", "application/json"} {
		assert.Contains(t, doc, want)
	}
	hs := headings(doc)
	for _, h := range []string{"endpoints", "writes", "errors", "rollouts", "security"} {
		assert.True(t, hasHeading(hs, h), "a heading %q (have %q)", h, hs)
	}
	for _, f := range []string{"README.md", "plugin/bluegreen/README.md"} {
		b, err := os.ReadFile(filepath.Join(harness.Root(), f))
		require.NoError(t, err)
		assert.Contains(t, string(b), "api.md)", "%s links docs/api.md", f)
	}
}

// TestSelectionSpec: docs/selection.md states the formula with the hash it
// names, and the ECS and TTL rules.
func TestSelectionSpec(t *testing.T) {
	doc := read(t, "selection.md")
	for _, want := range []string{
		"XXH64(BE64(XXH64(switch)) || family || address)", "p * Σw / 2^64 < W_i", "seed 0",
		"SCOPE PREFIX-LENGTH", "FORMERR", "capped at MAX", "effective_at", "before *cache*",
	} {
		assert.Contains(t, doc, want)
	}
}

// mdLink matches a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// anchor is GitHub's heading anchor: lower case, spaces to hyphens, most
// punctuation dropped.
func anchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocLinks: every relative link in README.md, the plugin README and
// docs/ names a file that exists, and an anchor into a Markdown file names
// one of its headings.
func TestDocLinks(t *testing.T) {
	root := harness.Root()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "plugin/bluegreen/README.md"))
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
			}
			if _, err := os.Stat(dest); err != nil {
				t.Errorf("%s: link %s: %v", f, target, err)
				continue
			}
			checked++
			if frag == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			db, err := os.ReadFile(dest)
			require.NoError(t, err)
			found := false
			for _, l := range strings.Split(string(db), "\n") {
				if strings.HasPrefix(l, "#") && anchor(strings.TrimLeft(l, "#")) == frag {
					found = true
				}
			}
			assert.True(t, found, "%s: link %s: no heading for #%s in %s", f, target, frag, dest)
		}
	}
	assert.Greater(t, checked, 10, "relative links checked")
}

package test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	coretest "github.com/coredns/coredns/test"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the repository root, the directory examples run from.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// corefileBlocks returns every ~~~ corefile (or ``` corefile) block of a
// Markdown file, with the line each starts on.
func corefileBlocks(t testing.TB, path string) ([]string, []int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		blocks []string
		lines  []int
		cur    strings.Builder
		in     bool
		n      int
	)
	s := bufio.NewScanner(f)
	for s.Scan() {
		n++
		line := strings.TrimRight(s.Text(), " \t")
		switch {
		case !in && (line == "~~~ corefile" || line == "``` corefile" || line == "~~~corefile" || line == "```corefile"):
			in = true
			cur.Reset()
			lines = append(lines, n)
		case in && (line == "~~~" || line == "```"):
			in = false
			blocks = append(blocks, cur.String())
		case in:
			cur.WriteString(line + "\n")
		}
	}
	require.NoError(t, s.Err())
	require.False(t, in, "%s: unterminated corefile block", path)
	return blocks, lines
}

// addrToken matches a Corefile token that is a listen address with a port:
// a server key (example.org:1053, dns://.:53) or an address given to a
// plugin (127.0.0.1:9153, [::1]:8053).
var addrToken = regexp.MustCompile(`^((?:[a-z0-9]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._*-]*)):(\d{1,5})(\{?)$`)

// bareListener matches a plugin that listens on a default address when it
// is given none.
var bareListener = regexp.MustCompile(`^(\s*)(prometheus|health|ready|pprof)\s*(\{?)\s*$`)

// rewritePorts gives every port in a Corefile a free one (the same port
// everywhere it appears, 0 left alone), every bare prometheus, health, ready
// and pprof line a free loopback address, and every bluegreen block without
// an admin line a free loopback admin address (instead of the default
// 127.0.0.1:8053), so examples never clash with each other or with a
// server running on the machine.
func rewritePorts(t testing.TB, corefile string) string {
	t.Helper()
	ports := map[string]string{}
	port := func(p string) string {
		if p == "0" {
			return p
		}
		if _, ok := ports[p]; !ok {
			ports[p] = strconv.Itoa(freePort(t))
		}
		return ports[p]
	}
	var lines []string
	for _, line := range strings.Split(corefile, "\n") {
		if m := bareListener.FindStringSubmatch(line); m != nil {
			lines = append(lines, fmt.Sprintf("%s%s 127.0.0.1:%d %s", m[1], m[2], freePort(t), m[3]))
			continue
		}
		for _, f := range strings.Fields(line) {
			if m := addrToken.FindStringSubmatch(f); m != nil {
				line = strings.Replace(line, f, m[1]+":"+port(m[2])+m[3], 1)
			}
		}
		lines = append(lines, line)
	}
	return injectAdmin(t, lines)
}

var bluegreenOpen = regexp.MustCompile(`^(\s*)bluegreen\b[^{#]*\{\s*$`)

// injectAdmin adds "admin 127.0.0.1:PORT" to every bluegreen block that has
// no admin line; all blocks share the one free port, as the spec allows.
func injectAdmin(t testing.TB, lines []string) string {
	admin := ""
	var out []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		m := bluegreenOpen.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		depth, has := 1, false
		for j := i + 1; j < len(lines) && depth > 0; j++ {
			f := strings.Fields(lines[j])
			if depth == 1 && len(f) > 0 && f[0] == "admin" {
				has = true
			}
			depth += strings.Count(lines[j], "{") - strings.Count(lines[j], "}")
		}
		if !has {
			if admin == "" {
				admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
			}
			out = append(out, m[1]+"    admin "+admin)
		}
	}
	return strings.Join(out, "\n")
}

func TestRewritePorts(t *testing.T) {
	in := `example.org:1053 example.net:1053 {
    bind 127.0.0.1
    prometheus 127.0.0.1:9153
    prometheus
    bluegreen {
        pin green 2001:db8::/32 10.0.0.0/8
        admin [::1]:8053
        health green http://127.0.0.1:8080/healthz
        reload 2s
    }
}
dns://.:53 {
    whoami
}
.:0 {
}
`
	got := rewritePorts(t, in)
	for _, old := range []string{":1053", ":9153", ":8053", ":53 "} {
		assert.NotContains(t, got, old, "port %s left in\n%s", old, got)
	}
	assert.Contains(t, got, "2001:db8::/32 10.0.0.0/8", "a CIDR was changed")
	assert.Contains(t, got, "http://127.0.0.1:8080/healthz", "a probe URL is not a listener")
	assert.Contains(t, got, "reload 2s")
	assert.Contains(t, got, ".:0 {")
	assert.Regexp(t, `\n    prometheus 127\.0\.0\.1:\d+ \n`, got)
	assert.Equal(t, 1, strings.Count(got, "admin "), "a block with an admin line keeps only its own")
	keys := regexp.MustCompile(`example\.org:(\d+) example\.net:(\d+)`).FindStringSubmatch(got)
	require.NotNil(t, keys, got)
	assert.Equal(t, keys[1], keys[2], "one port, one new port")

	got = rewritePorts(t, "example.org {\n    bluegreen example.org {\n        pool a a.db\n        health a http://x/ {\n        }\n    }\n}\n")
	assert.Regexp(t, `bluegreen example\.org \{\n        admin 127\.0\.0\.1:\d+\n        pool a a\.db`, got, "an admin address for a block without one")
}

// exampleDir makes a scratch directory that looks like the repository root
// for a Corefile: zones/, data/ and every other relative file the Corefile
// names, copied, so examples with stores write nothing into the repository.
func exampleDir(t testing.TB, corefile string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	copyTree := func(rel string) {
		src := filepath.Join(root, rel)
		require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(root, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dir, r), 0o755)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, r), b, 0o644)
		}))
	}
	copyTree("zones")
	for _, f := range strings.Fields(corefile) {
		if filepath.IsAbs(f) || strings.Contains(f, "..") || f == "zones" {
			continue
		}
		if st, err := os.Stat(filepath.Join(root, f)); err == nil && !st.IsDir() && !strings.HasPrefix(f, "zones/") {
			copyTree(f)
		}
	}
	return dir
}

// startExample starts a Corefile taken from the docs, with its ports
// rewritten, from a copy of the repository root, and returns the instance's
// first UDP address. The instance stops when the test ends.
func startExample(t *testing.T, corefile string) string {
	t.Helper()
	dir := exampleDir(t, corefile)
	t.Chdir(dir)
	corefile = rewritePorts(t, corefile)
	old := dnsserver.Port
	dnsserver.Port = strconv.Itoa(freePort(t)) // for server keys without a port
	defer func() { dnsserver.Port = old }()
	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err, "example does not start:\n%s", corefile)
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	udp, _ := coretest.CoreDNSServerPorts(inst, 0)
	return udp
}

// Every corefile example in the READMEs and in docs/ starts, as CoreDNS's
// own readme_test.go checks for its plugins; the plugin README has some.
func TestReadmeExamples(t *testing.T) {
	root := repoRoot(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, docs, "no docs/*.md")
	files := []string{"README.md", "plugin/bluegreen/README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	total := 0
	for _, file := range files {
		blocks, lines := corefileBlocks(t, filepath.Join(root, file))
		if file == "plugin/bluegreen/README.md" {
			require.NotEmpty(t, blocks, "%s has no corefile examples", file)
		}
		total += len(blocks)
		for i, b := range blocks {
			t.Run(fmt.Sprintf("%s:%d", file, lines[i]), func(t *testing.T) {
				startExample(t, b)
			})
		}
	}
	t.Logf("%d corefile examples in %d files", total, len(files))
}

// The plugin README is the operator's page in CoreDNS's layout and length:
// its sections in order, the metrics the DNS path exposes, and links to
// the references in docs/ that hold the rest.
func TestPluginReadmeSections(t *testing.T) {
	path := filepath.Join(repoRoot(t), "plugin/bluegreen/README.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(b)
	last := -1
	for _, sec := range []string{"## Name", "## Description", "## Syntax", "## Examples", "## Metrics", "## Ready", "## See Also", "## Bugs"} {
		i := strings.Index(text, "\n"+sec+"\n")
		require.GreaterOrEqual(t, i, 0, "section %q missing", sec)
		require.Greater(t, i, last, "section %q out of order", sec)
		last = i
	}
	for _, m := range []string{"answers_total", "weight", "share", "zone_reloads_total"} {
		assert.True(t, strings.Contains(text, "coredns_bluegreen_"+m), "metric coredns_bluegreen_%s not documented in %s", m, path)
	}
	for _, doc := range []string{"docs/api.md", "docs/selection.md", "docs/configuration.md"} {
		assert.Contains(t, text, "](../../"+doc+")", "the plugin README links %s", doc)
	}
	// CoreDNS's file README is about 700 words; the specification lives in
	// docs/, so this page stays an operator's page.
	words := len(strings.Fields(text))
	assert.LessOrEqual(t, words, 1300, "plugin README: %d words", words)
}

// Corefile.example, what make run serves, starts and answers each client
// from one pool.
func TestCorefileExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Corefile.example"))
	require.NoError(t, err)
	udp := startExample(t, string(b))
	require.NotEmpty(t, udp)
	for i := range 64 {
		r := exchange(t, "udp", udp, query("www.example.org", dns.TypeA, subnet(i)))
		require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s", r)
		require.NotEmpty(t, r.Answer)
		examplePool(t, r)
	}
}

// examplePool returns the pool of an answer for www.example.org from the
// repository's zones/: blue has 192.0.2.0/24 addresses, green
// 198.51.100.0/24. It fails when an answer has both or neither.
func examplePool(t testing.TB, r *dns.Msg) string {
	t.Helper()
	pools := map[string]bool{}
	for _, rr := range r.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(a.A.String(), "192.0.2."):
			pools["blue"] = true
		case strings.HasPrefix(a.A.String(), "198.51.100."):
			pools["green"] = true
		default:
			t.Fatalf("address %s from neither pool", a.A)
		}
	}
	require.Len(t, pools, 1, "answer from one pool:\n%s", r)
	for p := range pools {
		return p
	}
	return ""
}

// Package stock proves that bluegreen builds into an ordinary CoreDNS: the
// pinned CoreDNS release's own source, one plugin.cfg line, a replace to this
// checkout, CoreDNS's own go generate and go build — the steps
// docs/build-into-coredns.md gives — and that binary answers from weighted
// pools and serves the admin API.
package stock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// pluginLine is the plugin.cfg line of SPEC §1.
const pluginLine = "bluegreen:github.com/bluegreen-dns/bluegreen/plugin/bluegreen"

// coreDNSVersion returns the CoreDNS version this module pins (go.mod).
func coreDNSVersion(t *testing.T) string {
	t.Helper()
	out := goCmd(t, harness.Root(), "list", "-m", "-f", "{{.Version}}", "github.com/coredns/coredns")
	return strings.TrimSpace(out)
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	if nice, err := exec.LookPath("nice"); err == nil {
		// A whole CoreDNS build: at the lowest priority, so that the
		// timing-sensitive tests of packages running alongside keep the CPU.
		cmd = exec.Command(nice, append([]string{"-n", "19", "go"}, args...)...)
	}
	cmd.Dir = dir
	// The copy is not a git checkout; go must not try to stamp VCS data.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("go %s (%s): %.1fs", strings.Join(args, " "), dir, time.Since(start).Seconds())
	require.NoError(t, err, "go %s in %s:\n%s", strings.Join(args, " "), dir, out.String())
	return out.String()
}

// copyTree copies the read-only module cache tree src to dst, writable.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	require.NoError(t, err)
}

// insertBeforeCache inserts the plugin line immediately before cache:cache.
func insertBeforeCache(t *testing.T, cfg string) string {
	t.Helper()
	lines := strings.Split(cfg, "\n")
	var out []string
	found := false
	for _, l := range lines {
		if strings.TrimSpace(l) == "cache:cache" {
			out = append(out, pluginLine)
			found = true
		}
		out = append(out, l)
	}
	require.True(t, found, "plugin.cfg has no cache:cache line")
	return strings.Join(out, "\n")
}

func TestStockCoreDNSBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole CoreDNS from source; skipped with -short")
	}
	version := coreDNSVersion(t)
	require.Equal(t, "v1.15.0", version, "the pinned CoreDNS release")

	modcache := strings.TrimSpace(goCmd(t, harness.Root(), "env", "GOMODCACHE"))
	src := filepath.Join(modcache, "github.com/coredns/coredns@"+version)
	if _, err := os.Stat(filepath.Join(src, "plugin.cfg")); err != nil {
		// Not yet extracted (a fresh cache): download it through the proxy.
		goCmd(t, harness.Root(), "mod", "download", "github.com/coredns/coredns@"+version)
	}

	work := filepath.Join(t.TempDir(), "coredns")
	copyTree(t, src, work)

	// 1. plugin.cfg: the one line, before cache.
	cfgPath := filepath.Join(work, "plugin.cfg")
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, []byte(insertBeforeCache(t, string(cfg))), 0o644))

	// 2. go.mod: require and replace to this checkout.
	goCmd(t, work, "mod", "edit",
		"-require", "github.com/bluegreen-dns/bluegreen@v0.0.0",
		"-replace", "github.com/bluegreen-dns/bluegreen="+harness.Root())

	// 3. CoreDNS's own generators, then tidy and build.
	goCmd(t, work, "generate")
	zdir, err := os.ReadFile(filepath.Join(work, "core/dnsserver/zdirectives.go"))
	require.NoError(t, err)
	require.Regexp(t, `"bluegreen",\s*\n\s*"cache",`, string(zdir), "go generate must place bluegreen immediately before cache")
	zplug, err := os.ReadFile(filepath.Join(work, "core/plugin/zplugin.go"))
	require.NoError(t, err)
	require.Contains(t, string(zplug), `"github.com/bluegreen-dns/bluegreen/plugin/bluegreen"`)

	goCmd(t, work, "mod", "tidy")
	bin := filepath.Join(work, "coredns")
	goCmd(t, work, "build", "-o", bin, ".")

	// The binary lists the plugin.
	out, err := exec.Command(bin, "-plugins").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, strings.Fields(string(out)), "bluegreen", "-plugins lists bluegreen")

	// 4. Serve a weighted switch with the stock binary.
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	dnsPort, adminPort := harness.FreePort(t), harness.FreePort(t)
	corefile := fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 70 green 30
        admin 127.0.0.1:%d
    }
    cache
}
`, dnsPort, adminPort)
	t.Setenv("BLUEGREEN_BINARY", bin) // harness.Start runs this binary.
	p := harness.Start(t, dir, corefile)
	addr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	api := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	p.WaitDNS(addr, "www.example.org", 20*time.Second)
	p.WaitHTTP(api+"/healthz", 10*time.Second)

	// Weighted answers: each of 2,000 client subnets gets the pool the
	// spec's formula gives it at 70/30.
	counts := harness.RequireShares(t, addr, "example.org", harness.Weights{"blue": 70, "green": 30}, 2000)
	t.Logf("70/30: %v", counts)

	// The admin API: GET the switch, PUT new weights, and the answers follow.
	code, body := harness.HTTP(t, "GET", api+"/v1/switches/example.org", "")
	require.Equal(t, 200, code, body)
	var st struct {
		Weights map[string]uint64 `json:"weights"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, map[string]uint64{"blue": 70, "green": 30}, st.Weights)

	code, body = harness.HTTP(t, "PUT", api+"/v1/switches/example.org/weights", `{"weights":{"blue":0,"green":1},"reason":"stock build"}`)
	require.Equal(t, 200, code, body)
	counts = harness.RequireShares(t, addr, "example.org", harness.Weights{"blue": 0, "green": 1}, 200)
	require.Equal(t, map[string]int{"green": 200}, counts, "every client on green after blue 0 green 1")
}

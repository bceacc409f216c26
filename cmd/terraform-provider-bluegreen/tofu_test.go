package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The end-to-end test: a real OpenTofu (TOFU_BINARY, built by `make tofu`)
// runs this provider through dev_overrides against a real bluegreen server
// built from this repository (BLUEGREEN_BINARY, else built here), and DNS
// queries check what the applies did.

// need returns the tool named by env, else found on PATH as name; it skips
// the test when missing, or fails it under CI=true.
func need(t *testing.T, env, name, hint string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s: %v", env, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: set $%s or put %s on PATH (%s)", name, env, name, hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// build builds pkg (relative to dir) into out.
func build(t *testing.T, dir, pkg, out string) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: not building " + pkg)
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// bluegreenBinary returns $BLUEGREEN_BINARY, else a CoreDNS with bluegreen
// built from this repository.
func bluegreenBinary(t *testing.T) string {
	if b := os.Getenv("BLUEGREEN_BINARY"); b != "" {
		return b
	}
	out := filepath.Join(t.TempDir(), "coredns")
	build(t, "../..", "./cmd/coredns", out)
	return out
}

// providerDir returns a directory holding terraform-provider-bluegreen:
// $PROVIDER_BINARY's, else a build of this package.
func providerDir(t *testing.T) string {
	if b := os.Getenv("PROVIDER_BINARY"); b != "" {
		require.Equal(t, "terraform-provider-bluegreen", filepath.Base(b), "$PROVIDER_BINARY must be named terraform-provider-bluegreen for dev_overrides")
		return filepath.Dir(b)
	}
	dir := t.TempDir()
	build(t, ".", ".", filepath.Join(dir, "terraform-provider-bluegreen"))
	return dir
}

const baseZone = `$ORIGIN %[1]s.
$TTL 300
@       IN SOA  ns1 hostmaster 2026112201 7200 3600 1209600 60
@       IN NS   ns1
ns1     IN A    127.0.0.1
`

const poolZone = `$ORIGIN %[1]s.
$TTL 60
version IN TXT "%[2]s"
`

// server is a running bluegreen server with two switches: example.org
// (bbolt store, seeded 90/10) and canary.org (its green pool probed on a
// TCP port the test holds open until it closes it).
type server struct {
	dns, admin string
	health     net.Listener
}

func startServer(t *testing.T) *server {
	t.Helper()
	bin := bluegreenBinary(t)
	dir := t.TempDir()
	for _, zone := range []string{"example.org", "canary.org"} {
		write(t, filepath.Join(dir, zone+".base.db"), fmt.Sprintf(baseZone, zone))
		for _, pool := range []string{"blue", "green"} {
			write(t, filepath.Join(dir, zone+"."+pool+".db"), fmt.Sprintf(poolZone, zone, pool))
		}
	}
	health, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	require.NoError(t, err)
	go func() { // accept and close, so probes connect
		for {
			c, err := health.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := &server{
		dns:    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		admin:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		health: health,
	}
	t.Cleanup(func() { s.health.Close() })
	_, port, _ := net.SplitHostPort(s.dns)
	corefile := fmt.Sprintf(`example.org:%[1]s {
    bind 127.0.0.1
    bluegreen {
        base example.org.base.db
        pool blue example.org.blue.db
        pool green example.org.green.db
        weights blue 90 green 10
        store %[2]s
        admin %[3]s
    }
}
canary.org:%[1]s {
    bind 127.0.0.1
    bluegreen {
        base canary.org.base.db
        pool blue canary.org.blue.db
        pool green canary.org.green.db
        weights blue 100 green 0
        store %[4]s
        admin %[3]s
        health green tcp://%[5]s interval 200ms timeout 2s fails 2 passes 1
    }
}
`, port, filepath.Join(dir, "example.db"), s.admin, filepath.Join(dir, "canary.db"), health.Addr())
	write(t, filepath.Join(dir, "Corefile"), corefile)

	cmd := exec.Command(bin, "-conf", "Corefile")
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "coredns.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("coredns log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := s.get("example.org")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer its admin API within 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func write(t *testing.T, name, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(name, []byte(content), 0o644))
}

// switchState is what the tests read of a switch.
type switchState struct {
	Version uint64            `json:"version"`
	Weights map[string]uint64 `json:"weights"`
	Rollout *struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
		Steps  []any  `json:"steps"`
	} `json:"rollout"`
}

func (s *server) get(name string) (*switchState, error) {
	resp, err := http.Get("http://" + s.admin + "/v1/switches/" + name)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", name, resp.Status)
	}
	var st switchState
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

func (s *server) mustGet(t *testing.T, name string) *switchState {
	t.Helper()
	st, err := s.get(name)
	require.NoError(t, err)
	return st
}

// curlWeights changes example.org's weights by hand, with curl.
func (s *server) curlWeights(t *testing.T, blue, green int) {
	t.Helper()
	curl := need(t, "CURL", "curl", "apt-get install curl")
	out, err := exec.Command(curl, "-sS", "--fail-with-body", "-X", "PUT",
		"-H", "Content-Type: application/json",
		"-d", fmt.Sprintf(`{"weights":{"blue":%d,"green":%d},"reason":"by hand"}`, blue, green),
		"http://"+s.admin+"/v1/switches/example.org/weights").CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
}

// clients are the ECS subnets the DNS checks ask for.
func clients() []netip.Addr {
	var out []netip.Addr
	for i := range 400 {
		out = append(out, netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), 0}))
	}
	return out
}

// pools asks version.example.org. for each client (as ECS) and returns
// the pool that answered each.
func (s *server) pools(t *testing.T) map[netip.Addr]string {
	t.Helper()
	c := &dns.Client{Timeout: 2 * time.Second}
	out := map[netip.Addr]string{}
	for _, a := range clients() {
		m := new(dns.Msg)
		m.SetQuestion("version.example.org.", dns.TypeTXT)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: a.AsSlice()})
		m.Extra = append(m.Extra, o)
		r, _, err := c.Exchange(m, s.dns)
		require.NoError(t, err, "query for client %s", a)
		require.Len(t, r.Answer, 1, "client %s: %v", a, r)
		out[a] = strings.Join(r.Answer[0].(*dns.TXT).Txt, "")
	}
	return out
}

func share(p map[netip.Addr]string, pool string) float64 {
	n := 0
	for _, v := range p {
		if v == pool {
			n++
		}
	}
	return float64(n) / float64(len(p))
}

// workspace is a directory with a main.tf that tofu runs in, through a
// .tofurc whose dev_overrides point at the provider build.
type workspace struct {
	tofu string
	dir  string
	env  []string
}

func newWorkspace(t *testing.T, tofu, provider string) *workspace {
	dir := t.TempDir()
	rc := filepath.Join(dir, ".tofurc")
	write(t, rc, fmt.Sprintf(`provider_installation {
  dev_overrides {
    "bluegreen-dns/bluegreen" = %q
  }
  direct {}
}
`, provider))
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1",
		"TF_DATA_DIR="+filepath.Join(dir, ".tofu"))
	return &workspace{tofu: tofu, dir: dir, env: env}
}

func (w *workspace) config(t *testing.T, admin, body string) {
	write(t, filepath.Join(w.dir, "main.tf"), fmt.Sprintf(`terraform {
  required_providers {
    bluegreen = { source = "bluegreen-dns/bluegreen" }
  }
}

provider "bluegreen" {
  admin_url = "http://%s"
}
%s`, admin, body))
}

// run runs tofu with args and returns its output, with every run of white
// space made one space (tofu wraps its messages), and its exit code.
func (w *workspace) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if args[0] != "state" {
		args = append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, w.tofu, args...)
	cmd.Dir, cmd.Env = w.dir, w.env
	out, err := cmd.CombinedOutput()
	flat := strings.Join(strings.Fields(string(out)), " ")
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return flat, ee.ExitCode()
	}
	require.NoError(t, err, "tofu %s:\n%s", strings.Join(args, " "), out)
	return flat, 0
}

// ok runs tofu and requires it to exit 0.
func (w *workspace) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, code := w.run(t, args...)
	require.Equal(t, 0, code, "tofu %s exited %d:\n%s", strings.Join(args, " "), code, out)
	return out
}

const weightsTF = `
resource "bluegreen_weights" "web" {
  switch  = "example.org"
  weights = { blue = %d, green = %d }
  reason  = "tofu"
}

data "bluegreen_switch" "web" {
  name       = "example.org"
  depends_on = [bluegreen_weights.web]
}

output "shares" { value = data.bluegreen_switch.web.shares }
`

func TestTofu(t *testing.T) {
	tofu := need(t, "TOFU_BINARY", "tofu", "make tofu builds it")
	provider := providerDir(t)
	s := startServer(t)

	ws := newWorkspace(t, tofu, provider)
	weights := func(t *testing.T, blue, green int) { ws.config(t, s.admin, fmt.Sprintf(weightsTF, blue, green)) }

	t.Run("apply moves the weights and DNS follows", func(t *testing.T) {
		weights(t, 90, 10)
		ws.ok(t, "apply", "-auto-approve")
		before := s.pools(t)
		// 400 subnets hashed at 10 %: the count is fixed by the hash, and
		// within 3 standard deviations of 40 for any fair hash.
		assert.InDelta(t, 0.10, share(before, "green"), 0.045, "share of green at 90/10")

		weights(t, 50, 50)
		out, code := ws.run(t, "plan", "-detailed-exitcode")
		require.Equal(t, 2, code, "a change of weights is a plan with changes:\n%s", out)
		assert.Contains(t, out, `"green" = 10 -> 50`)
		ws.ok(t, "apply", "-auto-approve")
		assert.Equal(t, map[string]uint64{"blue": 50, "green": 50}, s.mustGet(t, "example.org").Weights)
		after := s.pools(t)
		assert.InDelta(t, 0.50, share(after, "green"), 0.075, "share of green at 50/50")
		for a, p := range before {
			if p == "green" {
				assert.Equal(t, "green", after[a], "raising green's share moved client %s out of green", a)
			}
		}
		out = ws.ok(t, "output", "-json", "shares")
		var shares map[string]float64
		require.NoError(t, json.Unmarshal([]byte(out), &shares), out)
		assert.Equal(t, map[string]float64{"blue": 0.5, "green": 0.5}, shares, "the data source reads the shares")
		out, code = ws.run(t, "plan", "-detailed-exitcode")
		assert.Equal(t, 0, code, "nothing to change after apply:\n%s", out)
	})

	t.Run("a change by hand is drift that apply restores", func(t *testing.T) {
		s.curlWeights(t, 70, 30)
		out, code := ws.run(t, "plan", "-detailed-exitcode")
		require.Equal(t, 2, code, "drift must show as a change:\n%s", out)
		assert.Contains(t, out, `"green" = 30 -> 50`)
		ws.ok(t, "apply", "-auto-approve")
		assert.Equal(t, map[string]uint64{"blue": 50, "green": 50}, s.mustGet(t, "example.org").Weights)
	})

	t.Run("a change between plan and apply fails the apply", func(t *testing.T) {
		weights(t, 60, 40)
		ws.ok(t, "plan", "-out=tfplan")
		s.curlWeights(t, 80, 20)
		out, code := ws.run(t, "apply", "tfplan")
		require.Equal(t, 1, code, "the apply must fail:\n%s", out)
		assert.Contains(t, out, "The switch changed since it was read")
		assert.Contains(t, out, "412 Precondition Failed")
		assert.Contains(t, out, "If-Match: version does not match the current version: nothing changed")
		assert.Equal(t, map[string]uint64{"blue": 80, "green": 20}, s.mustGet(t, "example.org").Weights, "the concurrent change stays")
		ws.ok(t, "apply", "-auto-approve")
		assert.Equal(t, map[string]uint64{"blue": 60, "green": 40}, s.mustGet(t, "example.org").Weights)
	})

	t.Run("a pool the switch lacks is refused at plan time", func(t *testing.T) {
		ws.config(t, s.admin, `
resource "bluegreen_weights" "web" {
  switch  = "example.org"
  weights = { blue = 60, red = 40 }
}
`)
		version := s.mustGet(t, "example.org").Version
		out, code := ws.run(t, "plan")
		require.Equal(t, 1, code, "plan must fail:\n%s", out)
		assert.Contains(t, out, `Switch example.org has no pool "red" (its pools: blue, green)`)
		assert.Contains(t, out, "missing green")
		assert.Equal(t, version, s.mustGet(t, "example.org").Version, "a plan changes nothing")
	})

	t.Run("import an existing switch", func(t *testing.T) {
		imp := newWorkspace(t, tofu, provider)
		imp.config(t, s.admin, `
resource "bluegreen_weights" "imported" {
  switch  = "example.org"
  weights = { blue = 60, green = 40 }
}
`)
		imp.ok(t, "import", "bluegreen_weights.imported", "example.org")
		out := imp.ok(t, "state", "show", "bluegreen_weights.imported")
		assert.Contains(t, out, `"green" = 40`)
		assert.Contains(t, out, fmt.Sprintf(`version = %d `, s.mustGet(t, "example.org").Version))
		out, code := imp.run(t, "plan", "-detailed-exitcode")
		assert.Equal(t, 0, code, "the imported switch matches the configuration:\n%s", out)
		// Destroy forgets the resource and leaves the weights.
		imp.ok(t, "destroy", "-auto-approve")
		assert.Equal(t, map[string]uint64{"blue": 60, "green": 40}, s.mustGet(t, "example.org").Weights)
	})

	rws := newWorkspace(t, tofu, provider)
	t.Run("rollout with wait completes", func(t *testing.T) {
		rws.config(t, s.admin, `
resource "bluegreen_rollout" "canary" {
  switch = "canary.org"
  steps = [
    { weights = { blue = 50, green = 50 }, hold = "1s" },
    { weights = { blue = 0, green = 100 } },
  ]
  abort_on_unhealthy = true
  wait               = true
}
`)
		rws.ok(t, "apply", "-auto-approve")
		st := s.mustGet(t, "canary.org")
		require.NotNil(t, st.Rollout)
		assert.Equal(t, "completed", st.Rollout.State)
		assert.Equal(t, map[string]uint64{"blue": 0, "green": 100}, st.Weights)
		out := rws.ok(t, "state", "show", "bluegreen_rollout.canary")
		assert.Contains(t, out, `status = "completed"`)
	})

	t.Run("destroy aborts a running rollout", func(t *testing.T) {
		dws := newWorkspace(t, tofu, provider)
		dws.config(t, s.admin, `
resource "bluegreen_rollout" "slow" {
  switch = "canary.org"
  steps = [
    { weights = { blue = 70, green = 30 }, hold = "1h" },
    { weights = { blue = 0, green = 100 } },
  ]
}
`)
		before := s.mustGet(t, "canary.org").Weights
		dws.ok(t, "apply", "-auto-approve")
		st := s.mustGet(t, "canary.org")
		require.Equal(t, "running", st.Rollout.State)
		assert.Equal(t, map[string]uint64{"blue": 70, "green": 30}, st.Weights)
		dws.ok(t, "destroy", "-auto-approve")
		st = s.mustGet(t, "canary.org")
		assert.Equal(t, "aborted", st.Rollout.State)
		assert.Equal(t, "bluegreen_rollout destroyed", st.Rollout.Reason)
		assert.Equal(t, before, st.Weights, "abort restores the weights from before the rollout")
	})

	t.Run("rollout aborted by a failing health check fails the apply", func(t *testing.T) {
		rws.config(t, s.admin, `
resource "bluegreen_rollout" "canary" {
  switch = "canary.org"
  steps = [
    { weights = { blue = 90, green = 10 }, hold = "1h" },
    { weights = { blue = 0, green = 100 } },
  ]
  abort_on_unhealthy = true
  wait               = true
}
`)
		before := s.mustGet(t, "canary.org").Weights
		var (
			wg   sync.WaitGroup
			out  string
			code int
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, code = rws.run(t, "apply", "-auto-approve")
		}()
		// Once the new rollout runs, close the port green's probe connects to.
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, err := s.get("canary.org")
			if err == nil && st.Rollout != nil && st.Rollout.State == "running" && len(st.Rollout.Steps) == 2 && st.Weights["green"] == 10 {
				break
			}
			if time.Now().After(deadline) {
				wg.Wait()
				t.Fatalf("the rollout did not start within 3 minutes:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.health.Close()
		wg.Wait()
		require.Equal(t, 1, code, "the apply must fail:\n%s", out)
		assert.Contains(t, out, "Rollout aborted")
		assert.Contains(t, out, "pool green unhealthy")
		st := s.mustGet(t, "canary.org")
		assert.Equal(t, "aborted", st.Rollout.State)
		assert.Equal(t, before, st.Weights, "the weights from before the rollout are back")
	})
}

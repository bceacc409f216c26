package test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serverPort returns the port of the first server block's key, or "".
func serverPort(corefile string) string {
	for _, line := range strings.Split(corefile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := addrToken.FindStringSubmatch(strings.Fields(line)[0]); m != nil {
			return m[2]
		}
		return ""
	}
	return ""
}

// startBinary runs the binary with Corefile.example, its ports made free and
// its DNS listener bound to 127.0.0.1, from a scratch copy of the
// repository root (zones/ and data/), and waits until it answers. It returns
// the address of its DNS listener.
func startBinary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Corefile.example"))
	require.NoError(t, err)
	dir := exampleDir(t, string(b))
	corefile := rewritePorts(t, string(b))
	if !regexp.MustCompile(`(?m)^\s*bind\s`).MatchString(corefile) {
		corefile = strings.Replace(corefile, "{", "{\n    bind 127.0.0.1", 1)
	}
	var args []string
	port := serverPort(corefile)
	if port == "" {
		port = strconv.Itoa(freePort(t))
		args = append(args, "-dns.port", port)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	harness.Start(t, dir, corefile, args...).WaitDNS(addr, "www.example.org", 30*time.Second)
	return addr
}

// digResult is what the tests read from dig's output.
type digResult struct {
	status string
	answer []string // A record addresses
	ecs    string   // "203.0.113.0/24/24" from "; CLIENT-SUBNET: ..."
	tcp    bool     // the SERVER line says (TCP)
	out    string
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digECS    = regexp.MustCompile(`(?m)^; CLIENT-SUBNET: (\S+)`)
	digServer = regexp.MustCompile(`(?m)^;; SERVER: .*\((TCP|UDP)\)`)
)

// dig runs the real dig against the server at addr and parses its output.
func dig(t *testing.T, digPath, addr string, args ...string) digResult {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := append([]string{"@" + host, "-p", port, "+time=2", "+tries=3"}, args...)
	out, err := exec.CommandContext(ctx, digPath, all...).CombinedOutput()
	require.NoError(t, err, "dig %s:\n%s", strings.Join(all, " "), out)
	res := digResult{out: string(out)}
	if m := digStatus.FindStringSubmatch(res.out); m != nil {
		res.status = m[1]
	}
	if m := digECS.FindStringSubmatch(res.out); m != nil {
		res.ecs = m[1]
	}
	if m := digServer.FindStringSubmatch(res.out); m != nil {
		res.tcp = m[1] == "TCP"
	}
	s := bufio.NewScanner(strings.NewReader(res.out))
	in := false
	for s.Scan() {
		line := s.Text()
		switch {
		case line == ";; ANSWER SECTION:":
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			f := strings.Fields(line)
			if len(f) == 5 && f[3] == "A" {
				res.answer = append(res.answer, f[4])
			}
		}
	}
	return res
}

// digPool returns the pool of dig's answer for www.example.org, failing
// unless every address comes from one pool of the repository's zones.
func digPool(t *testing.T, r digResult) string {
	t.Helper()
	require.Equal(t, "NOERROR", r.status, "dig output:\n%s", r.out)
	require.NotEmpty(t, r.answer, "no A records:\n%s", r.out)
	m := new(dns.Msg)
	for _, a := range r.answer {
		rr, err := dns.NewRR("www.example.org. 30 IN A " + a)
		require.NoError(t, err)
		m.Answer = append(m.Answer, rr)
	}
	return examplePool(t, m)
}

// The built binary serving Corefile.example, asked with the real dig: one
// pool per answer, ECS echoed with scope 24, both pools across subnets, and
// the same over TCP.
func TestE2EDig(t *testing.T) {
	digPath := harness.NeedTool(t, "dig")
	addr := startBinary(t)

	r := dig(t, digPath, addr, "www.example.org", "+subnet=203.0.113.0/24")
	pool := digPool(t, r)
	assert.Equal(t, "203.0.113.0/24/24", r.ecs, "CLIENT-SUBNET with scope 24:\n%s", r.out)
	assert.False(t, r.tcp)
	assert.Contains(t, r.out, " aa", "authoritative answer:\n%s", r.out)

	tr := dig(t, digPath, addr, "www.example.org", "+subnet=203.0.113.0/24", "+tcp")
	assert.True(t, tr.tcp, "dig +tcp used TCP:\n%s", tr.out)
	assert.Equal(t, pool, digPool(t, tr), "the same client over TCP")
	assert.Equal(t, "203.0.113.0/24/24", tr.ecs, "CLIENT-SUBNET over TCP:\n%s", tr.out)

	// A longer source prefix is answered with scope 24; a base name with 0.
	r = dig(t, digPath, addr, "www.example.org", "+subnet=203.0.113.77/32")
	assert.Equal(t, pool, digPool(t, r), "a host of the same /24")
	assert.Equal(t, "203.0.113.77/32/24", r.ecs)
	r = dig(t, digPath, addr, "mail.example.org", "+subnet=203.0.113.0/24")
	assert.Equal(t, "NOERROR", r.status)
	assert.Equal(t, "203.0.113.0/24/0", r.ecs, "a base name depends on no choice:\n%s", r.out)

	// dig +subnet=0 (family 0, "do not use my subnet"): scope 0.
	r = dig(t, digPath, addr, "www.example.org", "+subnet=0")
	digPool(t, r)
	assert.True(t, strings.HasSuffix(r.ecs, "/0/0"), "CLIENT-SUBNET for +subnet=0: %q\n%s", r.ecs, r.out)

	// Different subnets see both pools.
	seen := map[string]int{}
	for i := 0; i < 200 && (seen["blue"] == 0 || seen["green"] == 0 || i < 20); i++ {
		sn := subnet(i * 257)
		args := []string{"www.example.org", "+subnet=" + sn.String()}
		if i%4 == 0 {
			args = append(args, "+tcp")
		}
		r := dig(t, digPath, addr, args...)
		seen[digPool(t, r)]++
		assert.Equal(t, sn.String()+"/24", r.ecs, "CLIENT-SUBNET for %s", sn)
	}
	assert.Positive(t, seen["blue"], "no subnet got blue: %v", seen)
	assert.Positive(t, seen["green"], "no subnet got green: %v", seen)
}

// Two separately started processes of the binary, and a server started in
// this process from the same Corefile, answer every client of a large
// sample with the same pool.
func TestE2ETwoProcessesAgree(t *testing.T) {
	a := startBinary(t)
	b := startBinary(t)
	cs := clients(20_000, 900_000)
	pa := poolsByClient(t, a, "version.example.org", cs, 60*time.Second)
	pb := poolsByClient(t, b, "version.example.org", cs, 60*time.Second)

	corefile, err := os.ReadFile(filepath.Join(repoRoot(t), "Corefile.example"))
	require.NoError(t, err)
	udp := startExample(t, string(corefile))
	pc := poolsByClient(t, udp, "version.example.org", cs, 120*time.Second)

	for i := range cs {
		require.Equal(t, pa[i], pb[i], "client %s: two processes disagree", cs[i])
		require.Equal(t, pa[i], pc[i], "client %s: the binary and the in-process server disagree", cs[i])
	}
	c := count(pa)
	assert.Positive(t, c["blue"])
	assert.Positive(t, c["green"])
	t.Logf("pools over %d clients: %v", len(cs), c)
}

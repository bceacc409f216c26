package test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
)

// sample is one series of a scrape: its labels and value.
type sample struct {
	labels map[string]string
	value  float64
}

// scrape fetches the prometheus plugin's /metrics from addr and parses the
// text exposition format into series by metric name.
func scrape(t testing.TB, addr string) map[string][]sample {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string][]sample{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, labels := line, "", map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			var err error
			labels, rest, err = parseLabels(line[i+1:])
			require.NoError(t, err, "metrics line %q", line)
		} else {
			name, rest, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(rest)
		require.NotEmpty(t, f, "metrics line %q", line)
		v, err := strconv.ParseFloat(f[0], 64)
		require.NoError(t, err, "metrics line %q", line)
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	require.NoError(t, s.Err())
	return out
}

// parseLabels parses `a="x",b="y\"z"} rest` and returns the labels and rest.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		k, v, ok := strings.Cut(s, `="`)
		if !ok {
			return nil, "", fmt.Errorf("no label value in %q", s)
		}
		var val strings.Builder
		i := 0
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
				if v[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(v[i])
		}
		if i == len(v) {
			return nil, "", fmt.Errorf("unterminated label value in %q", s)
		}
		labels[k] = val.String()
		s = v[i+1:]
	}
}

// metricValue returns the summed value of the series of name whose labels
// include want, and whether there is one.
func metricValue(mfs map[string][]sample, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, m := range mfs[name] {
		for k, v := range want {
			if m.labels[k] != v {
				continue next
			}
		}
		found = true
		sum += m.value
	}
	return sum, found
}

// The prometheus plugin exposes answers_total, weight, share and
// zone_reloads_total with the spec's labels and the right values.
func TestMetrics(t *testing.T) {
	dir := zoneDir(t)
	prom := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const sw = "metrics.test"
	s := startServer(t, `.:0 {
	bind 127.0.0.1
	prometheus `+prom+`
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		weights blue 3 green 1
		reload 200ms
		name `+sw+`
	}
}`, dir)

	// Counters live as long as the process: compare with a first scrape, so
	// the test also passes under go test -count=N.
	before := scrape(t, prom)
	// Every counter series exists from the start (at 0 in a fresh process),
	// so the first increment shows in rate() and alerts.
	for name, labels := range map[string][]map[string]string{
		"coredns_bluegreen_zone_reloads_total": {
			{"switch": sw, "pool": "_base", "result": "success"}, {"switch": sw, "pool": "green", "result": "error"},
		},
		"coredns_bluegreen_store_errors_total": {{"switch": sw}},
		"coredns_bluegreen_fail_open_total":    {{"switch": sw}},
		"coredns_bluegreen_changes_total":      {{"switch": sw, "source": "api"}, {"switch": sw, "source": "health"}},
	} {
		for _, l := range labels {
			_, ok := metricValue(before, name, l)
			assert.True(t, ok, "no series %s%v before anything happened", name, l)
		}
	}
	answered := func(mfs map[string][]sample, pool string) float64 {
		v, _ := metricValue(mfs, "coredns_bluegreen_answers_total", map[string]string{"switch": sw, "pool": pool})
		return v
	}
	reloads := func(mfs map[string][]sample) float64 {
		v, _ := metricValue(mfs, "coredns_bluegreen_zone_reloads_total", map[string]string{"switch": sw, "pool": "green", "result": "success"})
		return v
	}

	cs := clients(2000, 700_000)
	pools := poolsByClient(t, s.udp, "pool.example.org", cs, 30*time.Second)
	want := count(pools)
	for i := range 25 {
		exchange(t, "tcp", s.tcp, query("mail.example.org", dns.TypeA, subnet(i)))
	}
	for i := range 5 {
		exchange(t, "udp", s.udp, query("nope.example.org", dns.TypeA, subnet(i)))
	}
	want["_base"] = 30

	mfs := scrape(t, prom)
	answers := mfs["coredns_bluegreen_answers_total"]
	require.NotEmpty(t, answers, "coredns_bluegreen_answers_total not exposed")
	for _, pool := range []string{"blue", "green", "_base"} {
		_, ok := metricValue(mfs, "coredns_bluegreen_answers_total", map[string]string{"switch": sw, "pool": pool})
		require.True(t, ok, "no answers_total series for pool %s", pool)
		assert.Equal(t, float64(want[pool]), answered(mfs, pool)-answered(before, pool), "answers_total{pool=%q} increase", pool)
	}
	for _, m := range answers {
		if l := m.labels; l["switch"] == sw {
			// The server's address as the Corefile gives it (port 0 here).
			assert.True(t, strings.HasPrefix(l["server"], "dns://127.0.0.1:"), "server label %q", l["server"])
		}
	}

	for pool, w := range map[string]float64{"blue": 3, "green": 1} {
		got, ok := metricValue(mfs, "coredns_bluegreen_weight", map[string]string{"switch": sw, "pool": pool})
		require.True(t, ok, "no weight series for %s", pool)
		assert.Equal(t, w, got, "weight{pool=%q}", pool)
		got, ok = metricValue(mfs, "coredns_bluegreen_share", map[string]string{"switch": sw, "pool": pool})
		require.True(t, ok, "no share series for %s", pool)
		assert.InDelta(t, w/4, got, 1e-9, "share{pool=%q}", pool)
	}

	// A successful reload of the green file is counted.
	green := filepath.Join(dir, "green.db")
	b, err := os.ReadFile(green)
	require.NoError(t, err)
	writeFileAtomic(t, green, append(b, []byte("added IN A 10.2.0.99\n")...))
	require.True(t, eventually(5*time.Second, func() bool {
		return reloads(scrape(t, prom)) > reloads(before)
	}), "zone_reloads_total{pool=green,result=success} did not count the reload")

	// Label sets are exactly the spec's, and no label holds a client address.
	mfs = scrape(t, prom)
	wantLabels := map[string][]string{
		"coredns_bluegreen_answers_total":      {"pool", "server", "switch"},
		"coredns_bluegreen_weight":             {"pool", "switch"},
		"coredns_bluegreen_share":              {"pool", "switch"},
		"coredns_bluegreen_zone_reloads_total": {"pool", "result", "switch"},
	}
	for name, labels := range wantLabels {
		series, ok := mfs[name]
		require.True(t, ok, "%s not exposed", name)
		for _, m := range series {
			l := m.labels
			var names []string
			for k, v := range l {
				names = append(names, k)
				if k == "server" {
					continue
				}
				_, err := netip.ParseAddr(v)
				assert.Error(t, err, "%s: label %s=%q is an address", name, k, v)
			}
			sort.Strings(names)
			assert.Equal(t, labels, names, "%s: label names", name)
		}
	}
}

// The ready plugin reports ready once the zone files are loaded.
func TestReady(t *testing.T) {
	ready := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startServer(t, `.:0 {
	bind 127.0.0.1
	ready `+ready+`
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		name ready.test
	}
}`, zoneDir(t))
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	ok := eventually(10*time.Second, func() bool {
		resp, err := c.Get("http://" + ready + "/ready")
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK
	})
	require.True(t, ok, "not ready: %s", last)
}

// The selected pool is published as metadata bluegreen/pool: the log
// plugin prints it.
func TestMetadataInLog(t *testing.T) {
	dir := zoneDir(t)
	logs := logcapture.Start(t)
	s := startServer(t, `.:0 {
	bind 127.0.0.1
	metadata
	log . "BGLOG {name} {type} {/bluegreen/pool}"
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		weights blue 50 green 50
		name metadata.test
	}
}`, dir)
	var wantLines []string
	for i := range 20 {
		r := exchange(t, "udp", s.udp, query("pool.example.org", dns.TypeTXT, subnet(i*17)))
		wantLines = append(wantLines, "BGLOG pool.example.org. TXT "+onePool(t, r))
	}
	exchange(t, "tcp", s.tcp, query("mail.example.org", dns.TypeA, subnet(1)))
	wantLines = append(wantLines, "BGLOG mail.example.org. A _base")

	ok := eventually(5*time.Second, func() bool {
		out := logs.String()
		for _, l := range wantLines {
			if !strings.Contains(out, l) {
				return false
			}
		}
		return true
	})
	require.True(t, ok, "log lines missing; want %q in\n%s", wantLines, logs.String())
	assert.Contains(t, logs.String(), "TXT blue")
	assert.Contains(t, logs.String(), "TXT green")
}

func TestParseLabels(t *testing.T) {
	l, rest, err := parseLabels(`a="x",b="y\"z",c="1\n2"} 3`)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "x", "b": `y"z`, "c": "1\n2"}, l)
	assert.Equal(t, " 3", rest)
	_, _, err = parseLabels(`a="x`)
	assert.Error(t, err)
}

package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stressFor is how long dnsperf saturates the server while the weights
// change ten times a second.
const stressFor = 30 * time.Second

// Each pool answers www with two addresses and api with a CNAME to www, so
// an answer that mixed pools would show.
var stressZones = map[string]string{
	"base.db": `$ORIGIN example.org.
$TTL 300
@    IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@    IN NS  ns1.example.org.
ns1  IN A   127.0.0.1
mail IN A   192.0.2.25
`,
	"blue.db": `$ORIGIN example.org.
$TTL 300
www IN A 192.0.2.1
www IN A 192.0.2.2
api IN CNAME www.example.org.
`,
	"green.db": `$ORIGIN example.org.
$TTL 300
www IN A 198.51.100.1
www IN A 198.51.100.2
api IN CNAME www.example.org.
`,
}

var stressPools = map[string]string{
	"192.0.2.1": "blue", "192.0.2.2": "blue",
	"198.51.100.1": "green", "198.51.100.2": "green",
}

// dnsperf at saturation against the built binary while the weights change
// ten times a second through the admin API: every query answered (none lost
// or timed out, by dnsperf or the checker), only NOERROR and NXDOMAIN, no
// answer mixing pools, and goroutines and memory back near their baseline
// afterwards.
func TestStressWeightChurn(t *testing.T) {
	dnsperf := harness.NeedTool(t, "dnsperf")
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	dir := t.TempDir()
	for name, body := range stressZones {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	dnsPort, adminPort, promPort := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	// One core for the server (dnsperf runs one thread): saturation, but
	// other test packages running beside this one keep a core.
	t.Setenv("GOMAXPROCS", "1")
	p := harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        name stress
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 90 green 10
        admin 127.0.0.1:%d
    }
    prometheus 127.0.0.1:%d
}
`, dnsPort, adminPort, promPort))
	addr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	p.WaitDNS(addr, "www.example.org", 10*time.Second)
	p.WaitHTTP(admin+"/healthz", 10*time.Second)
	p.WaitHTTP(metricsURL, 10*time.Second)

	queries := filepath.Join(dir, "queries.txt")
	require.NoError(t, os.WriteFile(queries, []byte("www.example.org A\napi.example.org A\nmail.example.org A\nwww.example.org AAAA\nnowhere.example.org A\n"), 0o644))
	perf := func(d time.Duration) string {
		out, err := exec.Command(dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(dnsPort), "-d", queries,
			"-l", strconv.Itoa(int(d.Seconds())), "-q", "100", "-c", "4").CombinedOutput()
		require.NoError(t, err, "dnsperf: %s", out)
		return string(out)
	}

	// Warm up, so the baseline includes the buffers a loaded server keeps.
	perf(2 * time.Second)
	time.Sleep(time.Second)
	base := scrapeSamples(t, metricsURL)
	t.Logf("baseline: %.0f goroutines, %.1f MiB resident, %.1f MiB heap in use",
		base["go_goroutines"], base["process_resident_memory_bytes"]/(1<<20), base["go_memstats_heap_inuse_bytes"]/(1<<20))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup

	// The weights change ten times a second.
	var changes, failedChanges atomic.Int64
	var firstFailure atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			blue := []int{90, 50, 10, 70, 30}[i%5]
			body := fmt.Sprintf(`{"weights":{"blue":%d,"green":%d},"reason":"stress %d"}`, blue, 100-blue, i)
			req, _ := http.NewRequest(http.MethodPut, admin+"/v1/switches/stress/weights", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				failedChanges.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failedChanges.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
				continue
			}
			changes.Add(1)
		}
	}()

	// A checker asks as many subnets and verifies every answer is one
	// pool's records.
	var checked, queryErrors atomic.Int64
	var firstQueryError atomic.Value
	var mu sync.Mutex
	seen := map[string]int{}
	var problems []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &dns.Client{Timeout: 2 * time.Second}
		for i := 0; ctx.Err() == nil; i++ {
			qname := []string{"www.example.org.", "api.example.org."}[i%2]
			m := new(dns.Msg)
			m.SetQuestion(qname, dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
				Address: net.IPv4(10, byte(i>>8), byte(i), 0).To4()}}
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				// A timeout is a failure too: -q 100 saturates the server
				// without overflowing its socket buffer.
				queryErrors.Add(1)
				firstQueryError.CompareAndSwap(nil, fmt.Sprintf("%s from 10.%d.%d.0/24: %v", qname, byte(i>>8), byte(i), err))
				continue
			}
			pool, problem := stressPool(r)
			mu.Lock()
			if problem != "" && len(problems) < 10 {
				problems = append(problems, fmt.Sprintf("%s from 10.%d.%d.0/24: %s\n%v", qname, byte(i>>8), byte(i), problem, r))
			}
			seen[pool]++
			mu.Unlock()
			checked.Add(1)
		}
	}()

	out := perf(stressFor)
	cancel()
	wg.Wait()

	t.Logf("dnsperf:\n%s", statistics(out))
	t.Logf("%d weight changes (%d failed), %d answers checked: %v", changes.Load(), failedChanges.Load(), checked.Load(), seen)
	rcodes := responseCodes(t, out)
	assert.Positive(t, rcodes["NOERROR"], "dnsperf got no NOERROR answers: %v", rcodes)
	assert.Positive(t, rcodes["NXDOMAIN"], "dnsperf got no NXDOMAIN answers (nowhere.example.org): %v", rcodes)
	for rc, n := range rcodes {
		assert.Contains(t, []string{"NOERROR", "NXDOMAIN"}, rc, "%d %s answers under load: %v", n, rc, rcodes)
	}
	sent, completed, lost := dnsperfCounts(t, out)
	assert.Zero(t, lost, "queries dnsperf lost (no answer within its timeout)")
	assert.Equal(t, sent, completed, "every query dnsperf sent was answered")
	assert.Zero(t, queryErrors.Load(), "checker queries without an answer, first: %v", firstQueryError.Load())
	assert.Empty(t, problems, "answers that are not exactly one pool's records")
	assert.Zero(t, failedChanges.Load(), "weight changes failed, first: %v", firstFailure.Load())
	assert.Greater(t, changes.Load(), int64(stressFor/(100*time.Millisecond))/2, "the weights changed about ten times a second")
	assert.Greater(t, checked.Load(), int64(1000), "the checker verified answers")
	assert.Positive(t, seen["blue"], "the checker saw blue: %v", seen)
	assert.Positive(t, seen["green"], "the checker saw green: %v", seen)

	// Afterwards: goroutines back to the baseline and memory near it (the
	// Go runtime returns freed memory to the system lazily, so resident
	// memory gets some slack; the heap in use must not have grown).
	var after map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrapeSamples(t, metricsURL)
		if (after["go_goroutines"] <= base["go_goroutines"]+2 &&
			after["go_memstats_heap_inuse_bytes"] <= 2*base["go_memstats_heap_inuse_bytes"]+16<<20) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after: %.0f goroutines, %.1f MiB resident, %.1f MiB heap in use",
		after["go_goroutines"], after["process_resident_memory_bytes"]/(1<<20), after["go_memstats_heap_inuse_bytes"]/(1<<20))
	assert.LessOrEqual(t, after["go_goroutines"], base["go_goroutines"]+2, "goroutines back to baseline")
	assert.LessOrEqual(t, after["go_memstats_heap_inuse_bytes"], 2*base["go_memstats_heap_inuse_bytes"]+16<<20, "heap in use near baseline")
	assert.LessOrEqual(t, after["process_resident_memory_bytes"], 1.5*base["process_resident_memory_bytes"]+64<<20, "resident memory near baseline")
}

// stressPool returns the pool an answer came from, or why it is not
// exactly one pool's records.
func stressPool(r *dns.Msg) (string, string) {
	if r.Rcode != dns.RcodeSuccess {
		return "", "rcode " + dns.RcodeToString[r.Rcode]
	}
	var addrs []string
	pools := map[string]bool{}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
			pools[stressPools[a.A.String()]] = true
		}
	}
	sort.Strings(addrs)
	if len(pools) != 1 || len(addrs) != 2 || pools[""] {
		return "", fmt.Sprintf("addresses %v", addrs)
	}
	for p := range pools {
		return p, ""
	}
	return "", "no pool"
}

var rcodeRE = regexp.MustCompile(`([A-Z]+) (\d+) \(`)

// responseCodes parses dnsperf's "Response codes:" line.
func responseCodes(t *testing.T, out string) map[string]int {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Response codes:"); ok {
			codes := map[string]int{}
			for _, m := range rcodeRE.FindAllStringSubmatch(rest, -1) {
				n, _ := strconv.Atoi(m[2])
				codes[m[1]] = n
			}
			return codes
		}
	}
	t.Fatalf("no response codes in dnsperf's output:\n%s", out)
	return nil
}

var dnsperfCountRE = regexp.MustCompile(`Queries (sent|completed|lost):\s+(\d+)`)

// dnsperfCounts parses dnsperf's "Queries sent", "Queries completed" and
// "Queries lost" lines; each must be there.
func dnsperfCounts(t *testing.T, out string) (sent, completed, lost int) {
	t.Helper()
	found := map[string]int{}
	for _, m := range dnsperfCountRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		found[m[1]] = n
	}
	for _, k := range []string{"sent", "completed", "lost"} {
		if _, ok := found[k]; !ok {
			t.Fatalf("no \"Queries %s\" in dnsperf's output:\n%s", k, out)
		}
	}
	return found["sent"], found["completed"], found["lost"]
}

func statistics(out string) string {
	if i := strings.Index(out, "Statistics:"); i >= 0 {
		return out[i:]
	}
	return out
}

// scrapeSamples returns the unlabelled samples of a Prometheus endpoint.
func scrapeSamples(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "{") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			samples[f[0]] = v
		}
	}
	require.NoError(t, sc.Err())
	return samples
}

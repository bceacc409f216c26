package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wwwAddrs returns the addresses www.example.org has for a client.
func wwwAddrs(t testing.TB, network, addr string) []string {
	t.Helper()
	r := exchange(t, network, addr, query("www.example.org", dns.TypeA, subnet(3)))
	require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s", r)
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// Zone files are re-read every reload interval: a changed pool file is
// served within it; a broken one leaves the old records serving and counts
// zone_reloads_total{result="error"}; a fixed one is served again.
func TestZoneReload(t *testing.T) {
	const (
		interval = 200 * time.Millisecond
		sw       = "reload.test"
	)
	dir := zoneDir(t)
	prom := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// No weights: the default sends everyone to the first pool, blue.
	s := startServer(t, `.:0 {
	bind 127.0.0.1
	prometheus `+prom+`
	bluegreen example.org {
		admin off
		base DIR/base.db
		pool blue DIR/blue.db
		pool green DIR/green.db
		reload `+interval.String()+`
		name `+sw+`
	}
}`, dir)
	require.ElementsMatch(t, []string{"10.1.0.1", "10.1.0.2"}, wwwAddrs(t, "udp", s.udp))

	blue := filepath.Join(dir, "blue.db")
	orig, err := os.ReadFile(blue)
	require.NoError(t, err)
	counter := func(result string) float64 {
		v, _ := metricValue(scrape(t, prom), "coredns_bluegreen_zone_reloads_total", map[string]string{"switch": sw, "pool": "blue", "result": result})
		return v
	}
	// Within the interval (plus scheduling slack under -race).
	within := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		require.True(t, eventually(interval+2*time.Second, cond), "%s not seen within %v", what, interval+2*time.Second)
		t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
	}

	successBefore := counter("success")

	// 1. A changed pool file.
	changed := strings.ReplaceAll(string(orig), "10.1.0.1\n", "10.1.0.77\n")
	changed += "fresh IN A 10.1.0.78\n"
	writeFileAtomic(t, blue, []byte(changed))
	within("the changed www record", func() bool {
		got := wwwAddrs(t, "udp", s.udp)
		return len(got) == 2 && got[0] != "10.1.0.1" && got[1] != "10.1.0.1"
	})
	assert.ElementsMatch(t, []string{"10.1.0.77", "10.1.0.2"}, wwwAddrs(t, "tcp", s.tcp))
	r := exchange(t, "udp", s.udp, query("fresh.example.org", dns.TypeA, subnet(3)))
	require.Len(t, r.Answer, 1, "the added name")
	within("zone_reloads_total{result=success}", func() bool { return counter("success") > successBefore })

	// 2. A broken pool file: old records keep serving, errors are counted.
	errorsBefore := counter("error")
	require.NoError(t, os.WriteFile(blue, []byte(changed+"broken IN A not-an-address\n"), 0o644))
	within("zone_reloads_total{result=error} incrementing", func() bool { return counter("error") > errorsBefore })
	for range 5 {
		assert.ElementsMatch(t, []string{"10.1.0.77", "10.1.0.2"}, wwwAddrs(t, "udp", s.udp), "records while the file is broken")
		time.Sleep(interval / 2)
	}
	r = exchange(t, "tcp", s.tcp, query("fresh.example.org", dns.TypeA, subnet(3)))
	assert.Len(t, r.Answer, 1, "the added name while the file is broken")

	// 3. A missing file counts as an error too, and changes nothing.
	// (The count is read before the file goes: a check may run at once.)
	errorsBefore = counter("error")
	require.NoError(t, os.Remove(blue))
	within("an error for the missing file", func() bool { return counter("error") > errorsBefore })
	assert.ElementsMatch(t, []string{"10.1.0.77", "10.1.0.2"}, wwwAddrs(t, "udp", s.udp), "records while the file is missing")

	// 4. Fixed again.
	writeFileAtomic(t, blue, []byte(strings.ReplaceAll(string(orig), "10.1.0.1\n", "10.1.0.88\n")))
	within("the fixed file's records", func() bool {
		got := wwwAddrs(t, "udp", s.udp)
		return len(got) == 2 && (got[0] == "10.1.0.88" || got[1] == "10.1.0.88")
	})
	r = exchange(t, "udp", s.udp, query("fresh.example.org", dns.TypeA, subnet(3)))
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "a name removed from the file")

	// 5. The base file is reloaded as well.
	base := filepath.Join(dir, "base.db")
	b, err := os.ReadFile(base)
	require.NoError(t, err)
	writeFileAtomic(t, base, []byte(strings.ReplaceAll(string(b), "192.0.2.25", "192.0.2.26")))
	within("the changed base record", func() bool {
		r := exchange(t, "udp", s.udp, query("mail.example.org", dns.TypeA, subnet(3)))
		return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "192.0.2.26"
	})
}

// reload 0 disables the checks.
func TestZoneReloadDisabled(t *testing.T) {
	dir := zoneDir(t)
	s := startServer(t, bgCorefile(`reload 0
		name noreload.test`), dir)
	blue := filepath.Join(dir, "blue.db")
	orig, err := os.ReadFile(blue)
	require.NoError(t, err)
	writeFileAtomic(t, blue, []byte(strings.ReplaceAll(string(orig), "10.1.0.1\n", "10.1.0.77\n")))
	time.Sleep(1500 * time.Millisecond)
	assert.ElementsMatch(t, []string{"10.1.0.1", "10.1.0.2"}, wwwAddrs(t, "udp", s.udp))
}

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/reuseport"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminReloadE2E runs the built binary: after startup a SO_REUSEPORT
// bind of the admin address fails; 4 keep-alive writers and 4 readers run
// across 10 SIGUSR1 reloads (each changes ttl MAX, which the API shows once
// the reload is done) with no failed request, no new connection, and the
// acknowledged versions contiguous; the bind still fails after them.
func TestAdminReloadE2E(t *testing.T) {
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("e2e-token\n"), 0o600))
	dnsPort, adminPort := harness.FreePort(t), harness.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	corefile := func(ttl int) string {
		return fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        ttl %d 1
        reload 0
        admin %s
        token token
    }
}
`, dnsPort, ttl, admin)
	}
	p := harness.Start(t, dir, corefile(30))
	p.WaitHTTP("http://"+admin+"/healthz", 20*time.Second)

	bindFails := func(when string) {
		other, err := reuseport.Listen("tcp", admin)
		if err == nil {
			other.Close()
		}
		require.Error(t, err, "%s: a SO_REUSEPORT bind of the admin address must fail", when)
	}
	bindFails("after startup")

	do := func(c *http.Client, method, path, body string) (int, []byte, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, "http://"+admin+path, rd)
		req.Header.Set("Authorization", "Bearer e2e-token")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	var (
		stopped  atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		acked    []uint64
		dials    atomic.Int64
		reads    atomic.Int64
	)
	client := func() *http.Client {
		d := &net.Dialer{}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			},
		}}
	}
	fail := func(s string) { mu.Lock(); failures = append(failures, s); mu.Unlock() }
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := client()
			for i := 0; !stopped.Load(); i++ {
				code, b, err := do(c, "PUT", "/v1/switches/example.org/weights", fmt.Sprintf(`{"weights":{"blue":%d,"green":%d}}`, 1+i%5, w))
				if err != nil || code != http.StatusOK {
					fail(fmt.Sprintf("writer %d: %d %s %v", w, code, b, err))
					continue
				}
				var v struct {
					Version uint64 `json:"version"`
				}
				if err := json.Unmarshal(b, &v); err != nil {
					fail(err.Error())
					continue
				}
				mu.Lock()
				acked = append(acked, v.Version)
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			c := client()
			for !stopped.Load() {
				if code, b, err := do(c, "GET", "/v1/switches/example.org", ""); err != nil || code != http.StatusOK {
					fail(fmt.Sprintf("reader: %d %s %v", code, b, err))
					continue
				}
				reads.Add(1)
			}
		}()
	}
	probe := &http.Client{Timeout: 5 * time.Second}
	for i := 1; i <= 10; i++ {
		ttl := 30 + i
		require.NoError(t, os.WriteFile(p.Conf, []byte(corefile(ttl)), 0o644))
		p.Signal(syscall.SIGUSR1)
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, b, err := do(probe, "GET", "/v1/switches/example.org", "")
			var v struct {
				TTL struct {
					Max int `json:"max"`
				} `json:"ttl"`
			}
			if err == nil && json.Unmarshal(b, &v) == nil && v.TTL.Max == ttl {
				break
			}
			require.True(t, time.Now().Before(deadline), "reload %d: ttl max %d not shown within 15 s: %s %v", i, ttl, b, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stopped.Store(true)
	wg.Wait()

	assert.Empty(t, failures, "failed requests across 10 reloads")
	assert.Equal(t, int64(8), dials.Load(), "8 keep-alive clients, 8 connections: a reload closes none")
	require.NotEmpty(t, acked)
	assert.Positive(t, reads.Load())
	slices.Sort(acked)
	for i, v := range acked {
		require.Equal(t, uint64(i+1), v, "acknowledged versions from 1 without a gap or a repeat")
	}
	bindFails("after 10 reloads")
	t.Logf("%d writes, %d reads across 10 SIGUSR1 reloads", len(acked), reads.Load())
}

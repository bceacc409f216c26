// Package demo runs `make demo`'s program briefly and checks that every
// client it simulates gets the pool the selection formula gives it, before
// and after a weight change made through the admin API.
package demo

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// report matches one second's line: "  3s  blue  180 ████░░  20 green ...".
var report = regexp.MustCompile(`^\s*(\d+)s\s+blue\s+(\d+) \S+\s+(\d+) green(?:\s+\((\d+) failed\))?`)

// fetchLine matches a -trace line: client subnet, pool, and when the DNS
// query was sent and answered (Unix nanoseconds).
var fetchLine = regexp.MustCompile(`^fetch (\S+) (blue|green|failed) (\d+) (\d+)$`)

type fetched struct {
	subnet          netip.Prefix
	pool            string
	asked, answered int64
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 12 s; skipped with -short")
	}
	coredns := harness.Binary(t)
	demo := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", demo, "./cmd/demo")
	if nice, err := exec.LookPath("nice"); err == nil {
		// Low priority: packages running alongside have timing-sensitive tests.
		build = exec.Command(nice, "-n", "19", "go", "build", "-o", demo, "./cmd/demo")
	}
	build.Dir = harness.Root()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/demo:\n%s", out)

	dnsPort, adminPort, httpPort := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	cmd := exec.Command(demo,
		"-coredns", coredns, "-zones", filepath.Join(harness.Root(), "demo"),
		"-duration", "12s", "-rate", "100", "-trace",
		"-dns-port", strconv.Itoa(dnsPort), "-admin-port", strconv.Itoa(adminPort), "-http-port", strconv.Itoa(httpPort))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuf
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("demo stderr:\n%s", stderr.String())
		}
	})

	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()

	var fetches []fetched
	seconds := 0
	// When the weight change was sent and when its 200 came back (Unix
	// nanoseconds): a query answered before the first was answered under
	// the old weights, one sent after the second under the new.
	var putSent, putDone int64
	timeout := time.After(40 * time.Second)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			if m := fetchLine.FindStringSubmatch(l); m != nil {
				f := fetched{pool: m[2]}
				f.subnet, err = netip.ParsePrefix(m[1])
				require.NoError(t, err, l)
				f.asked, _ = strconv.ParseInt(m[3], 10, 64)
				f.answered, _ = strconv.ParseInt(m[4], 10, 64)
				fetches = append(fetches, f)
				continue
			}
			t.Log(l)
			if report.MatchString(l) {
				seconds++
				if seconds == 3 {
					// Blue 90 green 10 (the seed) -> blue 20 green 80.
					putSent = time.Now().UnixNano()
					code, body := harness.HTTP(t, "PUT", fmt.Sprintf("http://127.0.0.1:%d/v1/switches/example.org/weights", adminPort),
						`{"weights":{"blue":20,"green":80},"reason":"demo test"}`)
					putDone = time.Now().UnixNano()
					require.Equal(t, 200, code, body)
				}
			}
		case <-timeout:
			t.Fatal("the demo did not finish within 40 s of a 12 s run")
		}
	}
	require.NoError(t, <-done, "the demo exits cleanly after -duration")

	require.NotZero(t, putDone, "the demo reported fewer than three seconds")
	require.GreaterOrEqual(t, seconds, 10, "seconds reported")

	// Every client against the formula, under the weights in effect when
	// it asked; a query in flight during the change may have either.
	pools := []string{"blue", "green"}
	before, after := []uint64{90, 10}, []uint64{20, 80}
	var nBefore, nAfter, nDuring, gBefore, gAfter int
	var wrong []string
	for _, f := range fetches {
		require.NotEqual(t, "failed", f.pool, "fetch as %s failed", f.subnet)
		key := f.subnet.Addr()
		old, now := pools[harness.RefPool("example.org", key, before)], pools[harness.RefPool("example.org", key, after)]
		green := 0
		if f.pool == "green" {
			green = 1
		}
		var want []string
		switch {
		case f.answered < putSent:
			nBefore, gBefore = nBefore+1, gBefore+green
			want = []string{old}
		case f.asked > putDone:
			nAfter, gAfter = nAfter+1, gAfter+green
			want = []string{now}
		default:
			nDuring++
			want = []string{old, now}
		}
		if !slices.Contains(want, f.pool) {
			wrong = append(wrong, fmt.Sprintf("%s got %s, expected %v", f.subnet, f.pool, want))
		}
	}
	t.Logf("%d fetches before the change (%d green), %d after (%d green), %d during it", nBefore, gBefore, nAfter, gAfter, nDuring)
	require.Empty(t, wrong, "clients on another pool than the formula gives them")
	// Enough clients on each side for the comparison to mean something.
	require.Greater(t, nBefore, 100, "fetches before the change")
	require.Greater(t, nAfter, 300, "fetches after the change")
}

type lockedBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

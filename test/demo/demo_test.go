// Package demo runs `make demo`'s program briefly and checks that the shares
// it reports follow a weight change made through the admin API.
package demo

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
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

type second struct{ blue, green, failed int }

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
		"-duration", "12s", "-rate", "100",
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

	var before, after []second
	changed := false
	timeout := time.After(40 * time.Second)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			t.Log(l)
			m := report.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			b, _ := strconv.Atoi(m[2])
			g, _ := strconv.Atoi(m[3])
			f, _ := strconv.Atoi(m[4])
			s := second{b, g, f}
			if !changed {
				before = append(before, s)
				if len(before) == 3 {
					// Blue 90 green 10 (the seed) -> blue 20 green 80.
					code, body := harness.HTTP(t, "PUT", fmt.Sprintf("http://127.0.0.1:%d/v1/switches/example.org/weights", adminPort),
						`{"weights":{"blue":20,"green":80},"reason":"demo test"}`)
					require.Equal(t, 200, code, body)
					changed = true
				}
				continue
			}
			after = append(after, s)
		case <-timeout:
			t.Fatal("the demo did not finish within 40 s of a 12 s run")
		}
	}
	require.NoError(t, <-done, "the demo exits cleanly after -duration")

	require.Len(t, before, 3, "three seconds reported before the change")
	require.GreaterOrEqual(t, len(after), 4, "seconds reported after the change")
	// The first second after the change straddles it.
	share := func(ss []second) (float64, int) {
		var b, g, f int
		for _, s := range ss {
			b, g, f = b+s.blue, g+s.green, f+s.failed
		}
		require.Zero(t, f, "failed fetches")
		require.Greater(t, b+g, 100, "responses counted")
		return float64(g) / float64(b+g), b + g
	}
	g0, n0 := share(before[1:])
	g1, n1 := share(after[1:])
	t.Logf("green share %.3f of %d before, %.3f of %d after", g0, n0, g1, n1)
	// Hundreds of samples from 1,000 subnets: ±0.08 is several standard
	// errors wide.
	require.InDelta(t, 0.10, g0, 0.08, "green share at blue 90 green 10")
	require.InDelta(t, 0.80, g1, 0.08, "green share at blue 20 green 80")
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

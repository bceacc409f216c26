// Package statuspage opens the admin listener's status page in headless
// Chromium (driven by chromedp) against the built binary with a rollout
// running.
//
// BLUEGREEN_SCREENSHOT=PATH also writes the wide screenshot to PATH (how
// docs/status-page.png is made).
package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// browser records what the page does: every request and every error the
// console would show.
type browser struct {
	ctx context.Context

	mu        sync.Mutex
	requests  []request
	responses []response
	errors    []string
}

type request struct {
	method, url, auth string
}

// response is the status of one response the page got.
type response struct {
	url    string
	status int64
}

// newBrowser starts headless Chromium with a window of width × height.
func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		bin = harness.NeedTool(t, "chromium") // fails under CI=true, else skips
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in CI containers
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	b := &browser{ctx: ctx}
	require.NoError(t, chromedp.Listen(ctx, b.event), "starting %s", bin)
	return b
}

func (b *browser) event(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		auth, _ := ev.Request.Headers["Authorization"].(string)
		b.requests = append(b.requests, request{method: ev.Request.Method, url: ev.Request.URL, auth: auth})
	case *network.EventResponseReceived:
		b.responses = append(b.responses, response{url: ev.Response.URL, status: ev.Response.Status})
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.errors = append(b.errors, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		b.errors = append(b.errors, "exception: "+msg)
	case *log.EventEntryAdded:
		// Network failures, CSP violations and the like.
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			b.errors = append(b.errors, fmt.Sprintf("log %s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

func (b *browser) snapshot() ([]request, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]request(nil), b.requests...), append([]string(nil), b.errors...)
}

// waitPolls waits until the page has requested /v1/status n times.
func (b *browser) waitPolls(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reqs, _ := b.snapshot()
		polls := 0
		for _, r := range reqs {
			if strings.HasSuffix(r.url, "/v1/status") {
				polls++
			}
		}
		if polls >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page requested /v1/status %d times in %s, want %d", polls, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do runs steps with a deadline.
func (b *browser) do(t *testing.T, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// waitFor waits up to d for a JavaScript expression to be true, and fails
// with msg and the page's text otherwise.
func waitFor(t *testing.T, b *browser, d time.Duration, expr, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: within %s: %v\npage text:\n%s", msg, d, err, text)
	}
}

// poolCell is the text of one cell (1 weight, 2 effective, 3 share, 4
// health) of a pool's row.
func poolCell(pool string, col int) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-pool=%q]')?.children[%d]?.textContent ?? '')`, pool, col)
}

type server struct {
	proc      *harness.Proc
	dns, base string
}

func startServer(t *testing.T, extra string) *server {
	t.Helper()
	dir := t.TempDir()
	harness.WriteZones(t, dir)
	dns, api := harness.FreePort(t), harness.FreePort(t)
	corefile := fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        pool blue blue.db
        pool green green.db
        base base.db
        weights blue 100 green 0
        store state.db
        admin 127.0.0.1:%d
%s    }
}
`, dns, api, extra)
	p := harness.Start(t, dir, corefile)
	s := &server{proc: p, dns: fmt.Sprintf("127.0.0.1:%d", dns), base: fmt.Sprintf("http://127.0.0.1:%d", api)}
	p.WaitDNS(s.dns, "www.example.org", 20*time.Second)
	p.WaitHTTP(s.base+"/healthz", 10*time.Second)
	return s
}

func api(t *testing.T, method, u, body string) map[string]any {
	t.Helper()
	code, out := harness.HTTP(t, method, u, body)
	require.Equal(t, 200, code, "%s %s: %s", method, u, out)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	return v
}

// checkReadOnly asserts that every request the page made was a GET of its
// own files or of /v1/status, on the listener, with no token in a URL.
func checkReadOnly(t *testing.T, reqs []request, base, token string) {
	t.Helper()
	require.NotEmpty(t, reqs)
	polls := 0
	for _, r := range reqs {
		assert.Equal(t, "GET", r.method, "the page sent %s %s", r.method, r.url)
		u, err := url.Parse(r.url)
		require.NoError(t, err)
		assert.Equal(t, base, u.Scheme+"://"+u.Host, "request to another origin: %s", r.url)
		assert.Contains(t, []string{"/", "/status/app.js", "/status/style.css", "/status/icon.svg", "/v1/status"}, u.Path, "unexpected request %s", r.url)
		assert.Empty(t, u.RawQuery, "query in %s", r.url)
		if token != "" {
			assert.NotContains(t, r.url, token, "token in a URL")
		}
		if u.Path == "/v1/status" {
			polls++
			if token != "" {
				assert.Equal(t, "Bearer "+token, r.auth, "the status request carries the token as a Bearer header")
			}
		}
	}
	assert.Greater(t, polls, 1, "the page polls /v1/status")
}

// checkScreenshot decodes a PNG and checks that it is not blank: the
// expected size and many distinct colours.
func checkScreenshot(t *testing.T, buf []byte, minWidth int, path string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, buf, 0o644))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Greater(t, fi.Size(), int64(20_000), "screenshot %s is %d bytes: blank?", path, fi.Size())
	img, err := png.Decode(bytes.NewReader(buf))
	require.NoError(t, err)
	bounds := img.Bounds()
	assert.GreaterOrEqual(t, bounds.Dx(), minWidth)
	assert.Greater(t, bounds.Dy(), 400)
	colours := map[[3]uint32]bool{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 3 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	assert.Greater(t, len(colours), 50, "screenshot has %d colours: blank?", len(colours))
}

func TestStatusPage(t *testing.T) {
	s := startServer(t, "")
	// Answers for the chart (the sampler reads the counters every 5 s):
	// all blue before the rollout.
	counts := harness.Shares(t, s.dns, 500)
	require.Equal(t, 500, counts["blue"])
	waitAnswers(t, s, 1, 12*time.Second)
	api(t, "POST", s.base+"/v1/switches/example.org/rollout",
		`{"steps":[{"weights":{"blue":90,"green":10},"hold":"10m"},{"weights":{"blue":50,"green":50},"hold":"10m"},{"weights":{"blue":0,"green":100},"hold":"0s"}],"reason":"release 2.4"}`)
	counts = harness.Shares(t, s.dns, 1000)
	require.Equal(t, 1000, counts["blue"]+counts["green"])

	b := newBrowser(t, 1280, 1000)
	b.do(t, 30*time.Second, chromedp.Navigate(s.base+"/"))
	waitFor(t, b, 5*time.Second, `!!document.querySelector('section[data-switch="example.org"] tr[data-pool="green"]')`, "the switch and its pools")

	// Pools, weights, shares, health, the current step.
	assert.Equal(t, "90", eval[string](t, b, poolCell("blue", 1)))
	assert.Equal(t, "10", eval[string](t, b, poolCell("green", 1)))
	assert.Equal(t, "90 %", eval[string](t, b, poolCell("blue", 3)))
	assert.Equal(t, "10 %", eval[string](t, b, poolCell("green", 3)))
	assert.Equal(t, "✓ healthy", eval[string](t, b, poolCell("green", 4)))
	assert.Equal(t, "Rollout running, step 1 of 3", eval[string](t, b, `document.querySelector('.rollout h3').textContent`))
	cur := eval[string](t, b, `document.querySelector('ol.steps li.current').textContent`)
	assert.Regexp(t, `^▶ current Step 1: blue 90 / green 10, hold 10m0s — next step in [5-9] min \d+ s$`, cur)
	assert.Equal(t, 2, eval[int](t, b, `document.querySelectorAll('ol.steps li.todo').length`))
	assert.Contains(t, eval[string](t, b, `document.querySelector('.split').getAttribute('aria-label')`), "blue 90 %, green 10 %", "the split is labelled, not only coloured")
	assert.Contains(t, eval[string](t, b, `document.querySelector('.history tbody tr').textContent`), "release 2.4")
	assert.Regexp(t, `^(Caches settle in \d+ s|Caches settled on the current weights)$`, eval[string](t, b, `document.querySelector('.settle').textContent`))

	// The chart: one dot per sample and pool, the rollout's answers last.
	waitFor(t, b, 12*time.Second, `document.querySelectorAll('svg.chart circle.pool-green').length >= 2`, "the chart of answers")
	label := eval[string](t, b, `document.querySelector('svg.chart').getAttribute('aria-label')`)
	assert.Regexp(t, `last sample: blue (8\d|9\d)(\.\d)? %, green (\d|1\d)(\.\d)? %$`, label, "about 90/10 of 1,000 subnets")

	// Changes through the API appear within 2 s: pause, then new weights.
	api(t, "POST", s.base+"/v1/switches/example.org/rollout/pause", `{"reason":"watching errors"}`)
	start := time.Now()
	waitFor(t, b, 2*time.Second, `document.querySelector('.rollout h3')?.textContent === 'Rollout paused, step 1 of 3'`, "the pause")
	t.Logf("pause shown after %s", time.Since(start))
	api(t, "PUT", s.base+"/v1/switches/example.org/weights", `{"weights":{"blue":30,"green":70},"reason":"manual override"}`)
	start = time.Now()
	waitFor(t, b, 2*time.Second, poolCell("green", 1)+` === '70' && `+poolCell("blue", 3)+` === '30 %'`, "the new weights")
	t.Logf("weights shown after %s", time.Since(start))
	assert.Contains(t, eval[string](t, b, `document.querySelector('.history tbody tr').textContent`), "manual override")

	// Answers under the new weights reach the chart.
	counts = harness.Shares(t, s.dns, 1000)
	require.Equal(t, 1000, counts["blue"]+counts["green"])
	waitFor(t, b, 12*time.Second, `/green (6\d|7\d)(\.\d)? %$/.test(document.querySelector('svg.chart').getAttribute('aria-label'))`, "the chart after the change")

	// Nothing changes now: the page's next polls get 304s.
	statuses := func() map[int64]int {
		b.mu.Lock()
		defer b.mu.Unlock()
		out := map[int64]int{}
		for _, r := range b.responses {
			if strings.HasSuffix(r.url, "/v1/status") {
				out[r.status]++
			}
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); statuses()[304] == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	assert.Positive(t, statuses()[304], "304s for unchanged polls: %v", statuses())
	assert.Positive(t, statuses()[200], "200s for changes: %v", statuses())

	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	checkScreenshot(t, buf, 1280, filepath.Join(t.TempDir(), "status-page.png"))
	if p := os.Getenv("BLUEGREEN_SCREENSHOT"); p != "" {
		require.NoError(t, os.WriteFile(p, buf, 0o644))
		t.Logf("screenshot written to %s", p)
	}

	// 375 px wide: nothing wider than the screen.
	b.do(t, 10*time.Second, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	waitFor(t, b, 3*time.Second, `document.documentElement.clientWidth === 375`, "the narrow viewport")
	assert.LessOrEqual(t, eval[int](t, b, `document.documentElement.scrollWidth`), 375, "horizontal scrolling at 375 px")
	buf, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	checkScreenshot(t, buf, 375, filepath.Join(t.TempDir(), "status-page-375.png"))

	reqs, errs := b.snapshot()
	checkReadOnly(t, reqs, s.base, "")
	assert.Empty(t, errs, "console errors")
}

// waitAnswers waits until the status has n samples with answers.
func waitAnswers(t *testing.T, s *server, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var st struct {
			Switches []struct {
				Answers []struct {
					Counts map[string]int `json:"counts"`
				} `json:"answers"`
			} `json:"switches"`
		}
		code, out := harness.HTTP(t, "GET", s.base+"/v1/status", "")
		require.Equal(t, 200, code, out)
		require.NoError(t, json.Unmarshal([]byte(out), &st))
		got := 0
		for _, a := range st.Switches[0].Answers {
			if a.Counts["blue"]+a.Counts["green"] > 0 {
				got++
			}
		}
		if got >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %d samples with answers within %s", n, d)
}

// apiAuth sends a JSON request with a bearer token.
func apiAuth(t *testing.T, method, u, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestStatusPageToken(t *testing.T) {
	const token = "page-test-token-7f3a"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	s := startServer(t, "        token "+tokenFile+"\n")

	b := newBrowser(t, 1024, 800)
	b.do(t, 30*time.Second, chromedp.Navigate(s.base+"/"))
	waitFor(t, b, 5*time.Second, `!document.querySelector('#login').hidden && document.activeElement?.id === 'token'`, "the token prompt")
	reqs, errs := b.snapshot()
	for _, r := range reqs {
		assert.NotContains(t, r.url, "/v1/status", "no data request before the token is given")
	}
	assert.Empty(t, errs, "console errors before the token")
	assert.Zero(t, eval[int](t, b, `document.querySelectorAll('section.switch').length`))

	// A wrong token: a clear message, the prompt again.
	b.do(t, 10*time.Second, chromedp.SendKeys(chromedp.ID("token"), "wrong-token"), chromedp.Click(chromedp.ID("token-submit")))
	waitFor(t, b, 3*time.Second, `document.querySelector('#login-msg').textContent.startsWith('401: the token was refused') && !document.querySelector('#login').hidden`, "the 401 message")
	assert.Equal(t, "", eval[string](t, b, `sessionStorage.getItem('bluegreen-token') ?? ''`), "a refused token is forgotten")
	_, errs = b.snapshot()
	require.NotEmpty(t, errs, "the browser reports the refused request as an error (so an empty list elsewhere means none)")
	for _, e := range errs {
		assert.Contains(t, e, "401", "only the refused request is an error: %s", e)
	}
	nErrs := len(errs)

	// The right token: the data.
	b.do(t, 10*time.Second, chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("token-submit")))
	waitFor(t, b, 3*time.Second, `!!document.querySelector('section[data-switch="example.org"] tr[data-pool="blue"]')`, "the data after the token")
	assert.Equal(t, "100", eval[string](t, b, poolCell("blue", 1)))
	assert.True(t, eval[bool](t, b, `document.querySelector('#login').hidden`))
	assert.Equal(t, token, eval[string](t, b, `sessionStorage.getItem('bluegreen-token')`))
	assert.Equal(t, "", eval[string](t, b, `localStorage.length ? 'localStorage used' : document.cookie`), "nothing outside sessionStorage")

	// Live with the token too.
	code, out := apiAuth(t, "PUT", s.base+"/v1/switches/example.org/weights", `{"weights":{"blue":40,"green":60}}`, token)
	require.Equal(t, 200, code, out)
	waitFor(t, b, 2*time.Second, poolCell("green", 1)+` === '60'`, "the new weights")

	reqs, errs = b.snapshot()
	var afterToken []request
	seen := false
	for _, r := range reqs {
		if strings.HasSuffix(r.url, "/v1/status") && r.auth == "Bearer "+token {
			seen = true
		}
		if seen {
			afterToken = append(afterToken, r)
		}
	}
	checkReadOnly(t, afterToken, s.base, token)
	for _, r := range reqs {
		assert.Equal(t, "GET", r.method, "%s %s", r.method, r.url)
		assert.NotContains(t, r.url, token)
	}
	assert.Len(t, errs, nErrs, "no console errors after the right token: %v", errs)
}

// TestReadmeScreenshot: the README shows the committed screenshot, and it
// is a real one (what TestStatusPage writes with BLUEGREEN_SCREENSHOT).
func TestReadmeScreenshot(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(harness.Root(), "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "](docs/status-page.png)")
	buf, err := os.ReadFile(filepath.Join(harness.Root(), "docs", "status-page.png"))
	require.NoError(t, err)
	checkScreenshot(t, buf, 1280, filepath.Join(t.TempDir(), "readme.png"))
}

// TestStatusPageAnalysis: a rollout with canary analysis shows each check
// with its bound, its last measured value and its counts, as the rollout
// JSON carries them (a stand-in Prometheus answers every query).
func TestStatusPageAnalysis(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,"0.0123"]}]}}`, time.Now().Unix())
	}))
	t.Cleanup(prom.Close)
	s := startServer(t, fmt.Sprintf("        ttl 2 1\n        analysis prometheus %s\n", prom.URL))
	api(t, "POST", s.base+"/v1/switches/example.org/rollout",
		`{"steps":[{"weights":{"blue":90,"green":10},"hold":"10m"},{"weights":{"blue":0,"green":100}}],
		  "analysis":{"interval":"1s","checks":[{"name":"error-rate","query":"errors{pool=\"{{pool}}\"}","pool":"green","max":0.05}]}}`)

	b := newBrowser(t, 1280, 1000)
	b.do(t, 30*time.Second, chromedp.Navigate(s.base+"/"))
	waitFor(t, b, 5*time.Second, `!!document.querySelector('.analysis tbody tr')`, "the analysis table")
	assert.Equal(t, "Analysis (every 1s)", eval[string](t, b, `document.querySelector('.analysis h3').textContent`))
	row := `document.querySelector('.analysis tbody tr')`
	assert.Equal(t, "error-rate", eval[string](t, b, row+`.children[0].textContent`))
	assert.Equal(t, "green", eval[string](t, b, row+`.children[1].textContent`))
	assert.Equal(t, "−∞ … 0.05", eval[string](t, b, row+`.children[2].textContent`))
	// Measured from the step's effective_at on (ttl 2: two seconds after
	// the start), once a second.
	waitFor(t, b, 8*time.Second, row+`.children[3].textContent === '0.0123'`, "the last measured value")
	assert.Regexp(t, `^pass · [1-9]\d* passed, 0 failed, 0 inconclusive$`, eval[string](t, b, row+`.children[4].textContent`))

	// The page may have shown all of it from its first poll: wait for a
	// second (it polls once a second) before checking what it asked.
	b.waitPolls(t, 2, 5*time.Second)
	reqs, errs := b.snapshot()
	checkReadOnly(t, reqs, s.base, "")
	assert.Empty(t, errs, "console errors")
}

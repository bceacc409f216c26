// Package health probes pools: http(s) (a 2xx or 3xx status passes) and tcp
// (a completed connect passes), with hysteresis: a pool turns unhealthy
// after Fails consecutive failures and healthy again after Passes
// consecutive passes. Probes run in their own goroutines, never on the DNS
// path, and stop when the Prober stops.
package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Defaults of the health option.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultFails    = 3
	DefaultPasses   = 2
)

// Check is one probe of a pool.
type Check struct {
	Pool     string
	URL      *url.URL
	Interval time.Duration
	Timeout  time.Duration
	Fails    int
	Passes   int
	// Unhealthy starts the check unhealthy (a pool that was unhealthy
	// before a Corefile reload stays so until Passes probes pass).
	Unhealthy bool
}

// ParseURL checks a probe URL: http://HOST[:PORT]/..., https://... or
// tcp://HOST:PORT, with a host and, when a port is given (always for tcp),
// a port from 1 to 65535, so a URL that could never be probed fails at
// setup instead of marking its pool unhealthy at run time.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "tcp":
		if u.Opaque != "" || u.Port() == "" {
			return nil, fmt.Errorf("URL %q: want tcp://host:port", s)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("URL %q: a tcp probe has no path", s)
		}
		if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return nil, fmt.Errorf("URL %q: want tcp://host:port, a tcp probe has no user, query or fragment", s)
		}
	default:
		return nil, fmt.Errorf("URL %q: scheme must be http, https or tcp", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("URL %q has no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("URL %q: port %s is not from 1 to 65535", s, p)
		}
	}
	return u, nil
}

// Report receives a pool's health transitions.
type Report func(pool string, healthy bool, detail string)

// Ticker paces one check: it probes, then waits on C for the next tick.
// C is called once per wait. time.Ticker's is the default; tests pass their
// own to run probe rounds one by one without sleeping across intervals.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type timeTicker struct{ *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.Ticker.C }

func newTimeTicker(d time.Duration) Ticker { return timeTicker{time.NewTicker(d)} }

// Prober runs checks.
type Prober struct {
	// Current, when set before Start, returns the health the receiver of
	// the reports holds for a pool. Reports are otherwise sent on the
	// prober's own transitions only; with Current, a check whose streak
	// confirms its state (Fails failures or Passes passes in a row) also
	// reports when the receiver holds the opposite. Another prober (the
	// one of the instance a Corefile reload replaces, which runs until the
	// new one has started) may have reported in between.
	Current func(pool string) bool

	// NewTicker, when set before Start, makes each check's ticker from its
	// interval (Start calls it once per check, in order); nil means
	// time.NewTicker.
	NewTicker func(interval time.Duration) Ticker

	checks []Check
	report Report
	client *http.Client

	mu     sync.Mutex
	failed map[string]map[int]string // pool -> failing check index -> detail
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a prober for checks that calls report on every transition of
// a pool (a pool is unhealthy while any of its checks is).
func New(checks []Check, report Report) *Prober {
	failed := map[string]map[int]string{}
	for i, c := range checks {
		if c.Unhealthy {
			if failed[c.Pool] == nil {
				failed[c.Pool] = map[int]string{}
			}
			failed[c.Pool][i] = "unhealthy before the reload"
		}
	}
	return &Prober{
		checks: checks,
		report: report,
		failed: failed,
		client: &http.Client{
			// 3xx passes: do not follow redirects.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:             nil,
				DisableKeepAlives: true,
				TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS12},
			},
		},
	}
}

// Start begins probing; each check probes at once, then every interval.
func (p *Prober) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	newTicker := p.NewTicker
	if newTicker == nil {
		newTicker = newTimeTicker
	}
	for i := range p.checks {
		p.wg.Add(1)
		go p.run(ctx, i, newTicker(p.checks[i].Interval))
	}
}

// Stop ends every probe and waits for the goroutines to exit.
func (p *Prober) Stop() {
	p.mu.Lock()
	cancel := p.cancel
	p.cancel = nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

func (p *Prober) run(ctx context.Context, i int, t Ticker) {
	defer p.wg.Done()
	c := p.checks[i]
	healthy := !c.Unhealthy
	fails, passes := 0, 0
	defer t.Stop()
	for {
		err := p.probe(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fails, passes = fails+1, 0
			if fails >= c.Fails {
				detail := fmt.Sprintf("%s: %v", redact(c.URL), err)
				if healthy {
					healthy = false
					p.set(c.Pool, i, false, detail)
				}
				p.reconcile(c.Pool, false, detail)
			}
		} else {
			fails, passes = 0, passes+1
			if passes >= c.Passes {
				if !healthy {
					healthy = true
					p.set(c.Pool, i, true, "")
				}
				p.reconcile(c.Pool, true, "")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// set records check i's state and reports the pool's transition, if any.
func (p *Prober) set(pool string, i int, healthy bool, detail string) {
	p.mu.Lock()
	f := p.failed[pool]
	if f == nil {
		f = map[int]string{}
		p.failed[pool] = f
	}
	was := len(f) == 0
	if healthy {
		delete(f, i)
	} else {
		f[i] = detail
	}
	now := len(f) == 0
	p.mu.Unlock()
	if was != now {
		p.report(pool, now, detail)
	}
}

// reconcile reports pool as healthy (or not) when that is the prober's
// view of the pool and Current says otherwise.
func (p *Prober) reconcile(pool string, healthy bool, detail string) {
	if p.Current == nil {
		return
	}
	p.mu.Lock()
	view := len(p.failed[pool]) == 0
	p.mu.Unlock()
	if view == healthy && p.Current(pool) != healthy {
		p.report(pool, healthy, detail)
	}
}

func (p *Prober) probe(ctx context.Context, c Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probe panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.URL.Scheme == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.URL.Host)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "bluegreen-health")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return nil
}

// redact drops user info from a URL for logs and the API.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

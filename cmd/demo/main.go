// Command demo is `make demo`: a live blue/green switch on loopback.
//
// It starts two tiny HTTP services, blue on 127.0.0.2:8000 and green on
// 127.0.0.3:8000, each answering with its colour; the CoreDNS build with a
// bluegreen switch for example.org whose pools (demo/blue.db, demo/green.db)
// point www.example.org at them; and a client loop that, as many different
// client subnets (EDNS Client Subnet), resolves www.example.org through the
// server and fetches http://www.example.org:8000/ from the address it got.
// Every second it prints a bar of the blue and green responses, while the
// README's curl commands move the weights or start a rollout:
//
//	curl -s -X PUT -H 'Content-Type: application/json' \
//	     -d '{"weights":{"blue":50,"green":50}}' 127.0.0.1:8053/v1/switches/example.org/weights
//
// Each line reads
//
//	3s  blue  180 ██████████████████░░  20 green   weights blue 90 green 10
//
// Each service counts its requests (demo_http_requests_total{pool,code})
// and latencies (demo_http_request_seconds{pool}) on /metrics. With
// -prometheus auto (what make demo passes) and Debian's prometheus
// installed, a Prometheus on 127.0.0.1:9090 scrapes both every second and
// the switch gets `analysis prometheus`, so a rollout can be judged by
// them; -fail-green 0.3 makes green answer 30 % of requests with HTTP 500.
//
// With -trace each fetch also prints a line (the demo's test compares every
// client with the pool the selection formula gives it):
//
//	fetch 10.0.123.0/24 green 1764500000123456789 1764500000124456789
//
// naming the client subnet, the pool that answered (or "failed"), and when
// the DNS query was sent and answered (Unix nanoseconds).
//
// All addresses are loopback (127.0.0.0/8 is loopback on Linux).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

type config struct {
	binary    string
	zones     string
	dnsPort   int
	adminPort int
	httpPort  int
	blueAddr  string
	greenAddr string
	duration  time.Duration
	rate      int
	subnets   int
	workers   int
	weights   string
	// failGreen is the share of green's requests answered with a 500.
	failGreen float64
	// trace prints a line per fetch.
	trace bool
	// prometheus is "off", "auto" (run it when installed) or a binary;
	// promPort its port on 127.0.0.1.
	prometheus string
	promPort   int
}

func main() {
	var c config
	flag.StringVar(&c.binary, "coredns", "bin/coredns", "the CoreDNS build to run")
	flag.StringVar(&c.zones, "zones", "demo", "directory with base.db, blue.db and green.db")
	flag.IntVar(&c.dnsPort, "dns-port", 1053, "DNS port on 127.0.0.1")
	flag.IntVar(&c.adminPort, "admin-port", 8053, "admin API port on 127.0.0.1")
	flag.IntVar(&c.httpPort, "http-port", 8000, "port of the blue and green HTTP services")
	flag.StringVar(&c.blueAddr, "blue", "127.0.0.2", "blue service address (must match blue.db)")
	flag.StringVar(&c.greenAddr, "green", "127.0.0.3", "green service address (must match green.db)")
	flag.DurationVar(&c.duration, "duration", 0, "stop after this long (0: until interrupted)")
	flag.IntVar(&c.rate, "rate", 200, "requests per second")
	flag.IntVar(&c.subnets, "subnets", 1000, "distinct client subnets (/24s) the clients come from")
	flag.IntVar(&c.workers, "workers", 8, "concurrent clients")
	flag.StringVar(&c.weights, "weights", "blue 90 green 10", "seed weights")
	flag.BoolVar(&c.trace, "trace", false, "print a line per fetch: client subnet, pool, and when the DNS query was sent and answered")
	flag.Float64Var(&c.failGreen, "fail-green", 0, "share (0 to 1) of green's requests answered with HTTP 500")
	flag.StringVar(&c.prometheus, "prometheus", "off", `run Prometheus scraping both services for rollout analysis: "auto" (when installed), "off" or a binary`)
	flag.IntVar(&c.promPort, "prometheus-port", 9090, "Prometheus port on 127.0.0.1")
	flag.Parse()
	if c.failGreen < 0 || c.failGreen > 1 {
		log.Fatalf("-fail-green %g: want a share from 0 to 1", c.failGreen)
	}
	log.SetFlags(0)
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		colour = true
	}
	log.SetPrefix("demo: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	if err := run(ctx, c, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config, w io.Writer) error {
	// The clients' trace lines and the reports share out.
	out := &syncWriter{w: w}
	// The two deployments, each with its own request counter and latency
	// histogram on /metrics, as an application would have.
	for _, s := range []struct{ colour, addr string }{{"blue", c.blueAddr}, {"green", c.greenAddr}} {
		l, err := net.Listen("tcp", net.JoinHostPort(s.addr, fmt.Sprint(c.httpPort)))
		if err != nil {
			return fmt.Errorf("%s service: %v", s.colour, err)
		}
		fail := 0.0
		if s.colour == "green" {
			fail = c.failGreen
		}
		srv := &http.Server{Handler: newService(s.colour, fail), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(l)
		defer srv.Close()
	}
	analysis := ""
	if bin := prometheusBinary(c.prometheus); bin != "" {
		url, stopProm, err := startPrometheus(bin, c)
		if err != nil {
			return err
		}
		defer stopProm()
		analysis = "analysis prometheus " + url
		fmt.Fprintf(out, "Prometheus on %s scraping blue and green every second\n", url)
	}

	// The DNS server.
	zones, err := filepath.Abs(c.zones)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bluegreen-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	corefile := fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base %s
        pool blue %s
        pool green %s
        weights %s
        ttl 5 1
        admin 127.0.0.1:%d
        %s
    }
    errors
}
`, c.dnsPort, filepath.Join(zones, "base.db"), filepath.Join(zones, "blue.db"), filepath.Join(zones, "green.db"), c.weights, c.adminPort, analysis)
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(c.binary, "-conf", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", c.binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	server := fmt.Sprintf("127.0.0.1:%d", c.dnsPort)
	api := fmt.Sprintf("http://127.0.0.1:%d/v1/switches/example.org", c.adminPort)
	if err := waitReady(ctx, server, exited); err != nil {
		return err
	}
	fmt.Fprintf(out, "DNS on %s, admin API on 127.0.0.1:%d; blue %s:%d, green %s:%d\n",
		server, c.adminPort, c.blueAddr, c.httpPort, c.greenAddr, c.httpPort)
	fmt.Fprintf(out, "move the weights:  curl -s -X PUT -H 'Content-Type: application/json' -d '{\"weights\":{\"blue\":50,\"green\":50}}' %s/weights\n", api)

	// The clients.
	var counts [3]atomic.Int64 // blue, green, error
	var next atomic.Int64
	tick := time.NewTicker(time.Second / time.Duration(max(c.rate, 1)))
	defer tick.Stop()
	work := make(chan int, c.workers)
	var wg sync.WaitGroup
	httpc := &http.Client{
		Timeout: 2 * time.Second,
		// A new connection per request: a pooled connection keeps going to
		// the address it was opened to, whatever DNS says later.
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	for w := 0; w < c.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				n := i % max(c.subnets, 1)
				pool, asked, answered := fetch(httpc, server, c.httpPort, n)
				counts[pool].Add(1)
				if c.trace {
					fmt.Fprintf(out, "fetch %s %s %d %d\n", clientSubnet(n), poolNames[pool], asked.UnixNano(), answered.UnixNano())
				}
			}
		}()
	}

	start := time.Now()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	var err2 error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-exited:
			err2 = fmt.Errorf("CoreDNS exited: %v", err)
			break loop
		case <-tick.C:
			select {
			case work <- int(next.Add(1)):
			default: // the clients are behind; skip rather than queue
			}
		case now := <-second.C:
			b, g, e := counts[0].Swap(0), counts[1].Swap(0), counts[2].Swap(0)
			fmt.Fprintln(out, line(now.Sub(start), b, g, e, weights(api)))
		}
	}
	close(work)
	wg.Wait()
	return err2
}

// waitReady waits until the server answers.
func waitReady(ctx context.Context, server string, exited chan error) error {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("CoreDNS exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if r, _, err := c.Exchange(m, server); err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("CoreDNS did not answer within 20s")
}

// poolNames are fetch's results by index.
var poolNames = [3]string{"blue", "green", "failed"}

// clientSubnet is client n's subnet, sent as its EDNS Client Subnet.
func clientSubnet(n int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 8), byte(n), 0}), 24)
}

// fetch resolves www.example.org as client subnet n and fetches the page
// from the address it got: 0 for blue, 1 for green, 2 for a failure. It
// also returns when the DNS query was sent and answered.
func fetch(httpc *http.Client, server string, port, n int) (pool int, asked, answered time.Time) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
		Address: clientSubnet(n).Addr().AsSlice(),
	})
	m.Extra = append(m.Extra, o)
	c := &dns.Client{Timeout: time.Second}
	asked = time.Now()
	r, _, err := c.Exchange(m, server)
	answered = time.Now()
	if err != nil {
		return 2, asked, answered
	}
	var addr string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addr = a.A.String()
			break
		}
	}
	if addr == "" {
		return 2, asked, answered
	}
	resp, err := httpc.Get("http://" + net.JoinHostPort(addr, fmt.Sprint(port)) + "/")
	if err != nil {
		return 2, asked, answered
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch strings.TrimSpace(string(body)) {
	case "blue":
		return 0, asked, answered
	case "green":
		return 1, asked, answered
	}
	return 2, asked, answered
}

// syncWriter serialises writes from the clients and the reporter.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// weights returns the switch's weights as "blue 90 green 10", or "" when the
// API does not answer.
func weights(api string) string {
	resp, err := (&http.Client{Timeout: 500 * time.Millisecond}).Get(api)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st struct {
		Weights map[string]uint64 `json:"weights"`
		Rollout json.RawMessage   `json:"rollout"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return ""
	}
	names := make([]string, 0, len(st.Weights))
	for n := range st.Weights {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, st.Weights[n]))
	}
	s := strings.Join(parts, " ")
	if len(st.Rollout) > 0 && string(st.Rollout) != "null" {
		s += " (rollout)"
	}
	return s
}

const barWidth = 40

// colour is set when stdout is a terminal: the bar is then blue and green.
var colour bool

// line is one second's report.
func line(elapsed time.Duration, blue, green, failed int64, w string) string {
	total := blue + green
	nb := 0
	if total > 0 {
		nb = int((blue*barWidth + total/2) / total)
	}
	bar := strings.Repeat("█", nb) + strings.Repeat("░", barWidth-nb)
	if colour {
		bar = "\x1b[34m" + strings.Repeat("█", nb) + "\x1b[32m" + strings.Repeat("█", barWidth-nb) + "\x1b[0m"
	}
	if total == 0 {
		bar = strings.Repeat(" ", barWidth)
	}
	s := fmt.Sprintf("%4ds  blue %4d %s %4d green", int(elapsed.Round(time.Second)/time.Second), blue, bar, green)
	if failed > 0 {
		s += fmt.Sprintf("  (%d failed)", failed)
	}
	if w != "" {
		s += "   weights " + w
	}
	return s
}

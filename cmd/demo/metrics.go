package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newService is one deployment: "/" answers with its colour (or, for a
// share fail of the requests, HTTP 500), "/metrics" has its counters:
// demo_http_requests_total{pool,code} and the latency histogram
// demo_http_request_seconds{pool}.
func newService(colour string, fail float64) http.Handler {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_http_requests_total", Help: "Requests by pool and status code.",
	}, []string{"pool", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "demo_http_request_seconds", Help: "Request latency by pool.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"pool"})
	reg.MustRegister(requests, latency)
	// Both codes exist from the start, so an error rate is 0, not "no data".
	requests.WithLabelValues(colour, "200")
	requests.WithLabelValues(colour, "500")
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		start := time.Now()
		code := http.StatusOK
		if fail > 0 && rand.Float64() < fail {
			code = http.StatusInternalServerError
			w.WriteHeader(code)
			io.WriteString(w, "error\n")
		} else {
			io.WriteString(w, colour+"\n")
		}
		requests.WithLabelValues(colour, fmt.Sprint(code)).Inc()
		latency.WithLabelValues(colour).Observe(time.Since(start).Seconds())
	})
	return mux
}

// prometheusBinary resolves the -prometheus flag: "" for none.
func prometheusBinary(flag string) string {
	switch flag {
	case "off", "":
		return ""
	case "auto":
		bin, err := exec.LookPath("prometheus")
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo: prometheus is not installed (apt-get install --no-install-recommends prometheus): no rollout analysis")
			return ""
		}
		return bin
	}
	return flag
}

// startPrometheus runs Prometheus from a temporary directory, scraping both
// services every second; it returns its URL and a function that stops it.
func startPrometheus(bin string, c config) (string, func(), error) {
	dir, err := os.MkdirTemp("", "bluegreen-demo-prometheus")
	if err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["%s:%d", "%s:%d"]
`, c.blueAddr, c.httpPort, c.greenAddr, c.httpPort)
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", c.promPort)
	cmd := exec.Command(bin, "--config.file", conf, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	return "http://" + addr, stop, nil
}

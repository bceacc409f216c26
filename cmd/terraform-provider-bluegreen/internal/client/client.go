// Package client talks to bluegreen's admin API over HTTP: the state of a
// switch, and the writes the provider makes (weights, rollouts). It knows
// the API's JSON only, not the plugin's packages.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is how to reach the admin API.
type Config struct {
	URL      string // http:// or https:// base URL
	Token    string // bearer token; "" for none
	CAFile   string // PEM CA bundle for https; "" for the system roots
	CertFile string // client certificate (with KeyFile) for mutual TLS
	KeyFile  string
	Timeout  time.Duration // per request; 0 for DefaultTimeout
}

// DefaultTimeout is the per-request timeout when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Client is an admin API client.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New checks cfg and returns a client; it makes no request.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("admin_url %q: want http://HOST:PORT or https://HOST:PORT", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("admin_url %q: want no user, query or fragment", cfg.URL)
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, errors.New("token: contains a line break")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("timeout %s: must be positive", timeout)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the admin API is reached directly, never through HTTP_PROXY
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("ca_file, cert_file and key_file need an https:// admin_url, got %q", cfg.URL)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		if (cfg.CertFile == "") != (cfg.KeyFile == "") {
			return nil, errors.New("cert_file and key_file go together: give both or neither")
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cert_file/key_file: %v", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: cfg.Token, http: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// Switch is the part of a switch's state the provider uses.
type Switch struct {
	Name        string             `json:"name"`
	Version     uint64             `json:"version"`
	Weights     map[string]uint64  `json:"weights"`
	Shares      map[string]float64 `json:"shares"`
	Pools       []Pool             `json:"pools"`
	UpdatedAt   time.Time          `json:"updated_at"`
	EffectiveAt time.Time          `json:"effective_at"`
	Rollout     *Rollout           `json:"rollout"`
	Store       string             `json:"store"`
}

// PoolNames returns the switch's pools in declared order.
func (s *Switch) PoolNames() []string {
	names := make([]string, len(s.Pools))
	for i, p := range s.Pools {
		names[i] = p.Name
	}
	return names
}

// Pool is one pool of a switch.
type Pool struct {
	Name            string `json:"name"`
	Weight          uint64 `json:"weight"`
	EffectiveWeight uint64 `json:"effective_weight"`
	Healthy         bool   `json:"healthy"`
}

// Rollout is a switch's rollout, running or ended.
type Rollout struct {
	Steps            []Step            `json:"steps"`
	Step             int               `json:"step"`
	StartedAt        time.Time         `json:"started_at"`
	Paused           bool              `json:"paused"`
	AbortOnUnhealthy bool              `json:"abort_on_unhealthy"`
	Before           map[string]uint64 `json:"before"`
	State            string            `json:"state"` // running, paused, completed, aborted
	Reason           string            `json:"reason"`
	Analysis         *RolloutAnalysis  `json:"analysis"` // nil without analysis
}

// Analysis is a rollout's canary analysis as the POST body carries it:
// each check's query is measured every Interval (a Go duration).
type Analysis struct {
	Interval string  `json:"interval"`
	Checks   []Check `json:"checks"`
}

// Check is one metric check; a nil bound or limit is left out of the
// body (the server's default limits are 0 failures, 3 inconclusive).
type Check struct {
	Name              string   `json:"name"`
	Query             string   `json:"query"`
	Pool              string   `json:"pool"`
	Min               *float64 `json:"min,omitempty"`
	Max               *float64 `json:"max,omitempty"`
	FailureLimit      *int64   `json:"failure_limit,omitempty"`
	InconclusiveLimit *int64   `json:"inconclusive_limit,omitempty"`
}

// RolloutAnalysis is the part of a rollout's analysis state the provider
// uses: the spec and whether a step waits for its checks.
type RolloutAnalysis struct {
	Interval string  `json:"interval"`
	Waiting  bool    `json:"waiting"`
	Checks   []Check `json:"checks"`
}

// Rollout states.
const (
	Running   = "running"
	Paused    = "paused"
	Completed = "completed"
	Aborted   = "aborted"
)

// Step is one rollout step; Hold is a Go duration ("10m"), "" on the last.
type Step struct {
	Weights map[string]uint64 `json:"weights"`
	Hold    string            `json:"hold,omitempty"`
}

// Error is an answer of the API other than 2xx: its status and the
// server's message.
type Error struct {
	Method, Path string
	Status       int
	Message      string // the "error" member of the body, or the body itself
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// StatusOf returns err's HTTP status, or 0 when err is not an *Error.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Switch returns the state of switch name.
func (c *Client) Switch(ctx context.Context, name string) (*Switch, error) {
	var s Switch
	if err := c.do(ctx, http.MethodGet, name, "", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Switches returns every switch on the listener.
func (c *Client) Switches(ctx context.Context) ([]Switch, error) {
	var s []Switch
	err := c.do(ctx, http.MethodGet, "", "", nil, nil, &s)
	return s, err
}

// PutWeights sets switch name's weights; ifMatch, when not nil, is the
// version the change is conditional on.
func (c *Client) PutWeights(ctx context.Context, name string, weights map[string]uint64, reason string, ifMatch *uint64) (*Switch, error) {
	body := map[string]any{"weights": weights}
	if reason != "" {
		body["reason"] = reason
	}
	var s Switch
	if err := c.do(ctx, http.MethodPut, name, "weights", ifMatch, body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// StartRollout starts a rollout on switch name, judged by analysis when
// that is not nil.
func (c *Client) StartRollout(ctx context.Context, name string, steps []Step, abortOnUnhealthy bool, analysis *Analysis, reason string, ifMatch *uint64) (*Switch, error) {
	body := map[string]any{"steps": steps, "abort_on_unhealthy": abortOnUnhealthy}
	if analysis != nil {
		body["analysis"] = analysis
	}
	if reason != "" {
		body["reason"] = reason
	}
	var s Switch
	if err := c.do(ctx, http.MethodPost, name, "rollout", ifMatch, body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// AbortRollout aborts switch name's running rollout, restoring the weights
// from before it.
func (c *Client) AbortRollout(ctx context.Context, name, reason string) (*Switch, error) {
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var s Switch
	if err := c.do(ctx, http.MethodDelete, name, "rollout", nil, body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// maxBody bounds what is read of an answer.
const maxBody = 4 << 20

func (c *Client) do(ctx context.Context, method, name, action string, ifMatch *uint64, in, out any) error {
	path := c.base.Path + "/v1/switches"
	if name != "" {
		path += "/" + url.PathEscape(name)
	}
	if action != "" {
		path += "/" + action
	}
	u := *c.base
	u.Path, u.RawPath = "", ""
	target := u.String() + path
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ifMatch != nil {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatUint(*ifMatch, 10)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if len(msg) > 1024 {
			msg = msg[:1024] + "..."
		}
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %v", method, path, err)
	}
	return nil
}

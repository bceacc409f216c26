// Package prom measures analysis checks with Prometheus's HTTP API, through
// the client in github.com/prometheus/client_golang/api.
package prom

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultTimeout bounds one measurement when the Corefile sets none.
const DefaultTimeout = 5 * time.Second

// Config is the Corefile's `analysis prometheus URL` block.
type Config struct {
	URL     string
	Token   string // bearer token; "" for none
	Timeout time.Duration
}

// Client queries one Prometheus server.
type Client struct {
	api     v1.API
	timeout time.Duration
}

// New returns a client for cfg; it does not connect.
func New(cfg Config) (*Client, error) {
	rt := http.DefaultTransport
	if cfg.Token != "" {
		rt = bearer{token: cfg.Token, next: rt}
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{api: v1.NewAPI(c), timeout: timeout}, nil
}

// Timeout implements analysis.Querier.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Query implements analysis.Querier: an instant query at at whose result
// must be a scalar or exactly one series.
func (c *Client) Query(ctx context.Context, query string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, _, err := c.api.Query(ctx, query, at, v1.WithTimeout(c.timeout))
	if err != nil {
		return 0, fmt.Errorf("prometheus: %v", err)
	}
	switch r := v.(type) {
	case *model.Scalar:
		return float64(r.Value), nil
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, fmt.Errorf("prometheus: the query returned no series")
		case 1:
			return float64(r[0].Value), nil
		}
		return 0, fmt.Errorf("prometheus: the query returned %d series, want one", len(r))
	}
	return 0, fmt.Errorf("prometheus: the query returned a %s, want a scalar or one series", v.Type())
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

package prom

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A stand-in for Prometheus's /api/v1/query: the body per query, and the
// Authorization header of the last request.
func fakeProm(t *testing.T, bodies map[string]string, auth *atomic.Pointer[string]) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		auth.Store(&a) // the timed-out query's handler may still run
		r.ParseForm()
		q := r.Form.Get("query")
		if q == "slow" {
			time.Sleep(300 * time.Millisecond)
		}
		body, ok := bodies[q]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			body = `{"status":"error","errorType":"bad_data","error":"parse error"}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestQuery(t *testing.T) {
	vec := func(series string) string {
		return `{"status":"success","data":{"resultType":"vector","result":[` + series + `]}}`
	}
	one := `{"metric":{"pool":"green"},"value":[1700000000,"0.25"]}`
	bodies := map[string]string{
		"one":    vec(one),
		"none":   vec(""),
		"two":    vec(one + "," + one),
		"scalar": `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}`,
		"matrix": `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		"nan":    vec(`{"metric":{},"value":[1700000000,"NaN"]}`),
		"slow":   vec(one),
	}
	var auth atomic.Pointer[string]
	srv := fakeProm(t, bodies, &auth)
	c, err := New(Config{URL: srv.URL, Token: "s3cret", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		want  float64
		err   string // "" for none
	}{
		{query: "one", want: 0.25},
		{query: "scalar", want: 7},
		{query: "none", err: "no series"},
		{query: "two", err: "2 series, want one"},
		{query: "matrix", err: "returned a matrix"},
		{query: "bad(", err: "parse error"},
		{query: "slow", err: "prometheus:"},
	}
	for i, tc := range tests {
		v, err := c.Query(context.Background(), tc.query, time.Now())
		switch {
		case tc.err == "" && (err != nil || v != tc.want):
			t.Errorf("Test %d: %s: expected %g, got %g, %v", i, tc.query, tc.want, v, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Test %d: %s: expected an error containing %q, got %g, %v", i, tc.query, tc.err, v, err)
		}
	}
	if a := auth.Load(); a == nil || *a != "Bearer s3cret" {
		t.Errorf("expected the bearer token sent, got Authorization %v", a)
	}
	// NaN is a value here; judging it inconclusive is the check's job.
	if v, err := c.Query(context.Background(), "nan", time.Now()); err != nil || v == v {
		t.Errorf("expected NaN, got %g, %v", v, err)
	}
	if c.Timeout() != 100*time.Millisecond {
		t.Errorf("expected the configured timeout, got %s", c.Timeout())
	}
	if c, _ := New(Config{URL: srv.URL}); c.Timeout() != DefaultTimeout {
		t.Errorf("expected the default timeout %s, got %s", DefaultTimeout, c.Timeout())
	}
}

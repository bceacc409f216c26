package client

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func switchHandler(t *testing.T, token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
			return
		}
		w.Write([]byte(`{"name":"example.org","version":7,"weights":{"blue":90,"green":10},"pools":[{"name":"blue"},{"name":"green"}]}`))
	}
}

// TestTLS: an https admin_url is verified against ca_file, and refused
// without it (the test server's certificate is self-signed).
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(switchHandler(t, ""))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	c, err := New(Config{URL: srv.URL, CAFile: ca})
	require.NoError(t, err)
	sw, err := c.Switch(context.Background(), "example.org")
	require.NoError(t, err)
	assert.Equal(t, uint64(7), sw.Version)
	assert.Equal(t, []string{"blue", "green"}, sw.PoolNames())

	c, err = New(Config{URL: srv.URL})
	require.NoError(t, err)
	_, err = c.Switch(context.Background(), "example.org")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")
}

func TestToken(t *testing.T) {
	srv := httptest.NewServer(switchHandler(t, "s3cret"))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Token: "s3cret"})
	require.NoError(t, err)
	_, err = c.Switch(context.Background(), "example.org")
	require.NoError(t, err)

	c, err = New(Config{URL: srv.URL, Token: "wrong"})
	require.NoError(t, err)
	_, err = c.Switch(context.Background(), "example.org")
	assert.Equal(t, 401, StatusOf(err))
	assert.EqualError(t, err, "GET /v1/switches/example.org: 401 Unauthorized: missing or wrong bearer token")
}

// TestErrorBody: a body that is not the API's JSON error is quoted as it is.
func TestErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL + "/"})
	require.NoError(t, err)
	_, err = c.PutWeights(context.Background(), "example.org", map[string]uint64{"blue": 1}, "", nil)
	assert.Equal(t, 502, StatusOf(err))
	assert.EqualError(t, err, "PUT /v1/switches/example.org/weights: 502 Bad Gateway: upstream connect error")
}

// TestStartRolloutAnalysis: the analysis goes into the body as given,
// bounds and limits left unset are left out (the server has defaults),
// and a rollout without analysis sends no "analysis" member.
func TestStartRolloutAnalysis(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"example.org","version":8,"rollout":{"state":"running","analysis":{"interval":"30s","waiting":true,"checks":[{"name":"error-rate","query":"q","pool":"green","max":0.05,"failure_limit":1,"inconclusive_limit":3,"passes":2}]}}}`))
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL})
	require.NoError(t, err)
	steps := []Step{{Weights: map[string]uint64{"blue": 0, "green": 1}}}
	hi, limit := 0.05, int64(1)
	sw, err := c.StartRollout(context.Background(), "example.org", steps, false,
		&Analysis{Interval: "30s", Checks: []Check{{Name: "error-rate", Query: `rate(x{pool="{{pool}}"}[1m])`, Pool: "green", Max: &hi, FailureLimit: &limit}}}, "", nil)
	require.NoError(t, err)
	require.NotNil(t, sw.Rollout.Analysis)
	assert.True(t, sw.Rollout.Analysis.Waiting)
	assert.Equal(t, "error-rate", sw.Rollout.Analysis.Checks[0].Name)
	_, err = c.StartRollout(context.Background(), "example.org", steps, false, nil, "", nil)
	require.NoError(t, err)
	require.Len(t, bodies, 2)
	assert.JSONEq(t, `{"steps":[{"weights":{"blue":0,"green":1}}],"abort_on_unhealthy":false,
		"analysis":{"interval":"30s","checks":[{"name":"error-rate","query":"rate(x{pool=\"{{pool}}\"}[1m])","pool":"green","max":0.05,"failure_limit":1}]}}`, bodies[0])
	assert.NotContains(t, bodies[1], "analysis")
}

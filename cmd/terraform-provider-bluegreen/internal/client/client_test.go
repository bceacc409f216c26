package client

import (
	"context"
	"encoding/pem"
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

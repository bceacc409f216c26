package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
)

// PluginName is the plugin's key in trafficRouting.plugins and in the
// argo-rollouts-config ConfigMap.
const PluginName = "bluegreen-dns/bluegreen"

// defaultTimeout bounds each admin API call when the config has no timeout:
// the controller waits for the plugin inside a reconcile.
const defaultTimeout = 10 * time.Second

// Config is a Rollout's trafficRouting.plugins."bluegreen-dns/bluegreen".
type Config struct {
	AdminURL   string `json:"adminURL"`
	Switch     string `json:"switch"`
	StablePool string `json:"stablePool"`
	CanaryPool string `json:"canaryPool"`
	TokenFile  string `json:"tokenFile,omitempty"`
	CAFile     string `json:"caFile,omitempty"`
	CertFile   string `json:"certFile,omitempty"`
	KeyFile    string `json:"keyFile,omitempty"`
	Timeout    string `json:"timeout,omitempty"`
}

// poolName is the plugin's rule for pool names (SPEC §2).
var poolName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// parseConfig decodes and checks raw; every error names the field.
func parseConfig(raw []byte) (*Config, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, errors.New("no config: set trafficRouting.plugins." + `"` + PluginName + `"` + " (adminURL, switch, stablePool, canaryPool)")
	}
	// Case-sensitive and strict, as the API server decodes: "adminUrl" is
	// an unknown field, not adminURL.
	var c Config
	strict, err := kjson.UnmarshalStrict(raw, &c)
	if err != nil {
		return nil, fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(strict...))
	}
	if c.AdminURL == "" {
		return nil, errors.New("adminURL: missing (the admin API, e.g. http://bluegreen-admin.bluegreen.svc:8053)")
	}
	u, err := url.Parse(c.AdminURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("adminURL %q: %v", c.AdminURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("adminURL %q: want an http:// or https:// URL", c.AdminURL)
	case u.Host == "":
		return nil, fmt.Errorf("adminURL %q: no host", c.AdminURL)
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("adminURL %q: want scheme, host, port and an optional path only", c.AdminURL)
	}
	if c.Switch == "" {
		return nil, errors.New("switch: missing (the switch's name in the admin API, e.g. example.org)")
	}
	if strings.ContainsAny(c.Switch, "/?#% ") {
		return nil, fmt.Errorf("switch %q: not a switch name", c.Switch)
	}
	for _, p := range []struct{ field, v string }{{"stablePool", c.StablePool}, {"canaryPool", c.CanaryPool}} {
		if p.v == "" {
			return nil, fmt.Errorf("%s: missing", p.field)
		}
		if !poolName.MatchString(p.v) {
			return nil, fmt.Errorf("%s %q: not a pool name ([a-z][a-z0-9-]{0,31})", p.field, p.v)
		}
	}
	if c.StablePool == c.CanaryPool {
		return nil, fmt.Errorf("canaryPool %q: the same pool as stablePool", c.CanaryPool)
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout %q: want a positive duration such as 10s", c.Timeout)
		}
	}
	if u.Scheme == "http" {
		for _, f := range []struct{ field, v string }{{"caFile", c.CAFile}, {"certFile", c.CertFile}, {"keyFile", c.KeyFile}} {
			if f.v != "" {
				return nil, fmt.Errorf("%s: only for an https:// adminURL", f.field)
			}
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			return nil, errors.New("certFile: missing (keyFile is set; give both or neither)")
		}
		return nil, errors.New("keyFile: missing (certFile is set; give both or neither)")
	}
	return &c, nil
}

// timeout is the config's timeout, or the default.
func (c *Config) timeout() time.Duration {
	if c.Timeout == "" {
		return defaultTimeout
	}
	d, _ := time.ParseDuration(c.Timeout)
	return d
}

// httpClient builds the client for c's admin listener: its CA and client
// certificate are read once here, the token on every request (a mounted
// Secret is updated in place).
func (c *Config) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the admin API is a cluster-internal address
	if strings.HasPrefix(c.AdminURL, "https:") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("caFile: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("caFile %s: no PEM certificate in it", c.CAFile)
			}
			tc.RootCAs = pool
		}
		if c.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("certFile/keyFile: %v", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr, Timeout: c.timeout()}, nil
}

// token reads the bearer token: the first line of tokenFile, as the
// server reads its own token file.
func (c *Config) token() (string, error) {
	if c.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("tokenFile: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("tokenFile %s: the first line is empty", c.TokenFile)
	}
	return line, nil
}

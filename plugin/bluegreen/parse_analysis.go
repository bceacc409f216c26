package bluegreen

import (
	"net/url"
	"time"

	"github.com/coredns/caddy"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis/prom"
)

// maxAnalysisTimeout bounds the analysis block's timeout: a measurement
// longer than that holds up every interval after it.
const maxAnalysisTimeout = time.Minute

// parseAnalysis parses `analysis prometheus URL [{ token FILE; timeout D }]`.
func parseAnalysis(c *caddy.Controller, args []string, resolve func(string) string) (*prom.Config, error) {
	if len(args) != 2 || args[0] != "prometheus" {
		return nil, c.Errf("analysis: want 'analysis prometheus URL'")
	}
	u, err := url.Parse(args[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, c.Errf("analysis: %q must be the http:// or https:// URL of a Prometheus server (no credentials, query or fragment)", args[1])
	}
	pc := &prom.Config{URL: args[1], Timeout: prom.DefaultTimeout}
	// The optional block opens on the same line, as store etcd's does.
	if !c.NextArg() {
		return pc, nil
	}
	if c.Val() != "{" {
		return nil, c.Errf("analysis: want '{' after the URL, got %q", c.Val())
	}
	seen := map[string]bool{}
	for c.Next() {
		prop := c.Val()
		if prop == "}" {
			return pc, nil
		}
		if seen[prop] {
			return nil, c.Errf("analysis: %s declared twice", prop)
		}
		seen[prop] = true
		args := c.RemainingArgs()
		switch prop {
		case "token":
			if len(args) != 1 {
				return nil, c.Errf("analysis: want 'token FILE'")
			}
			tok, err := readToken(resolve(args[0]))
			if err != nil {
				return nil, c.Errf("analysis: token: %v", err)
			}
			pc.Token = tok
		case "timeout":
			if len(args) != 1 {
				return nil, c.Errf("analysis: want 'timeout DURATION'")
			}
			d, err := time.ParseDuration(args[0])
			if err != nil || d <= 0 || d > maxAnalysisTimeout {
				return nil, c.Errf("analysis: timeout %q must be a duration above 0 and at most %s", args[0], maxAnalysisTimeout)
			}
			pc.Timeout = d
		default:
			return nil, c.Errf("analysis: unknown property '%s'", prop)
		}
	}
	return nil, c.Errf("analysis: the block is not closed")
}

// analysisQuerier returns the querier for the parsed block; nil without one.
func analysisQuerier(pc *prom.Config) (analysis.Querier, error) {
	if pc == nil {
		return nil, nil
	}
	return prom.New(*pc)
}

package bluegreen

import (
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis/prom"
)

func TestParseAnalysis(t *testing.T) {
	dir := minimalZones(t)
	const pools = "pool blue blue.db\npool green green.db\n"
	block := func(lines string) string { return "bluegreen {\n" + pools + lines + "\n}" }
	const at = " - Error during parsing: "
	tests := []struct {
		input string
		want  *prom.Config // nil: no analysis
		err   string
	}{
		{input: block("")},
		{input: block("analysis prometheus http://127.0.0.1:9090"), want: &prom.Config{URL: "http://127.0.0.1:9090", Timeout: 5 * time.Second}},
		{input: block("analysis prometheus https://prom.example:9090/prefix {\ntoken token\ntimeout 2s\n}\nttl 30"),
			want: &prom.Config{URL: "https://prom.example:9090/prefix", Token: "s3cret", Timeout: 2 * time.Second}},
		{input: block("analysis prometheus http://127.0.0.1:9090\nanalysis prometheus http://127.0.0.1:9091"), err: "Testfile:5" + at + "analysis: declared twice (first at Testfile:4)"},
		{input: block("analysis prometheus"), err: "Testfile:4" + at + "analysis: want 'analysis prometheus URL'"},
		{input: block("analysis graphite http://127.0.0.1:8080"), err: "Testfile:4" + at + "analysis: want 'analysis prometheus URL'"},
		{input: block("analysis prometheus 127.0.0.1:9090"), err: "Testfile:4" + at + `analysis: "127.0.0.1:9090" must be the http:// or https:// URL`},
		{input: block("analysis prometheus ftp://127.0.0.1:9090"), err: `"ftp://127.0.0.1:9090" must be the http:// or https:// URL`},
		{input: block("analysis prometheus http://user:pw@127.0.0.1:9090"), err: "no credentials"},
		{input: block("analysis prometheus http://"), err: "must be the http:// or https:// URL"},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntimeout 0s\n}"), err: "Testfile:5" + at + `analysis: timeout "0s" must be a duration above 0`},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntimeout 2m\n}"), err: `timeout "2m" must be a duration above 0 and at most 1m0s`},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntimeout 1s\ntimeout 2s\n}"), err: "Testfile:6" + at + "analysis: timeout declared twice"},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntoken missing-file\n}"), err: "Testfile:5" + at + "analysis: token: open "},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntoken empty-token\n}"), err: "the first line, the token, is empty"},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\ntoken\n}"), err: "analysis: want 'token FILE'"},
		{input: block("analysis prometheus http://127.0.0.1:9090 {\nfoo 1\n}"), err: "Testfile:5" + at + "analysis: unknown property 'foo'"},
		{input: block("analysis prometheus http://127.0.0.1:9090 x"), err: "Testfile:4" + at + "analysis: want 'analysis prometheus URL'"},
	}
	for i, tc := range tests {
		cfg, err := parseIn(dir, tc.input)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: expected an error containing %q, got %v", i, tc.err, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Test %d: expected no error, got %v", i, err)
			continue
		}
		switch {
		case tc.want == nil && cfg.analysis != nil:
			t.Errorf("Test %d: expected no analysis, got %+v", i, cfg.analysis)
		case tc.want != nil && (cfg.analysis == nil || *cfg.analysis != *tc.want):
			t.Errorf("Test %d: expected %+v, got %+v", i, tc.want, cfg.analysis)
		}
	}
}

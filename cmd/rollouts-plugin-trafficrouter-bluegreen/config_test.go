package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	for i, tc := range []struct {
		raw, err string
	}{
		{`{"adminURL":"http://a:8053","switch":"example.org","stablePool":"blue","canaryPool":"green"}`, ""},
		{`{"adminURL":"https://a:8053/","switch":"s","stablePool":"blue","canaryPool":"green","caFile":"/ca","certFile":"/c","keyFile":"/k","timeout":"3s","tokenFile":"/t"}`, ""},
		{``, "no config"},
		{`null`, "no config"},
		{`[]`, "config: cannot unmarshal array"},
		{`{"adminURL":"http://a"} {}`, "config: invalid character"},
		{`{"adminUrl":"http://a","switch":"s","stablePool":"blue","canaryPool":"green"}`, `unknown field "adminUrl"`},
		{`{"adminURL":"http://a","adminURL":"http://b","switch":"s","stablePool":"blue","canaryPool":"green"}`, `duplicate field "adminURL"`},
		{`{"switch":"s","stablePool":"blue","canaryPool":"green"}`, "adminURL: missing"},
		{`{"adminURL":"a:8053","switch":"s","stablePool":"blue","canaryPool":"green"}`, `adminURL "a:8053": want an http:// or https:// URL`},
		{`{"adminURL":"http://","switch":"s","stablePool":"blue","canaryPool":"green"}`, "no host"},
		{`{"adminURL":"http://u:p@a","switch":"s","stablePool":"blue","canaryPool":"green"}`, "want scheme, host, port"},
		{`{"adminURL":"http://a","stablePool":"blue","canaryPool":"green"}`, "switch: missing"},
		{`{"adminURL":"http://a","switch":"a/b","stablePool":"blue","canaryPool":"green"}`, `switch "a/b": not a switch name`},
		{`{"adminURL":"http://a","switch":"s","canaryPool":"green"}`, "stablePool: missing"},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue"}`, "canaryPool: missing"},
		{`{"adminURL":"http://a","switch":"s","stablePool":"Blue","canaryPool":"green"}`, `stablePool "Blue": not a pool name`},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"blue"}`, `canaryPool "blue": the same pool as stablePool`},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"green","timeout":"0s"}`, `timeout "0s"`},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"green","timeout":"-1s"}`, `timeout "-1s"`},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"green","caFile":"/ca"}`, "caFile: only for an https:// adminURL"},
		{`{"adminURL":"https://a","switch":"s","stablePool":"blue","canaryPool":"green","certFile":"/c"}`, "keyFile: missing"},
		{`{"adminURL":"https://a","switch":"s","stablePool":"blue","canaryPool":"green","keyFile":"/k"}`, "certFile: missing"},
		{`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"green","weight":5}`, `unknown field "weight"`},
		{`{"adminURL":5,"switch":"s","stablePool":"blue","canaryPool":"green"}`, "adminURL"},
	} {
		c, err := parseConfig([]byte(tc.raw))
		if tc.err == "" {
			require.NoError(t, err, "Test %d", i)
			require.NotNil(t, c)
			continue
		}
		require.ErrorContains(t, err, tc.err, "Test %d: %s", i, tc.raw)
	}
}

func TestTimeoutDefault(t *testing.T) {
	c, err := parseConfig([]byte(`{"adminURL":"http://a","switch":"s","stablePool":"blue","canaryPool":"green"}`))
	require.NoError(t, err)
	require.Equal(t, defaultTimeout, c.timeout())
	c.Timeout = "1500ms"
	require.Equal(t, 1500*time.Millisecond, c.timeout())
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	for i, tc := range []struct {
		file, want, err string
	}{
		{write("a", " s3cret \nsecond line\n"), "s3cret", ""},
		{write("b", "no-newline"), "no-newline", ""},
		{write("c", "\nsecond\n"), "", "the first line is empty"},
		{filepath.Join(dir, "absent"), "", "tokenFile: open"},
	} {
		got, err := (&Config{TokenFile: tc.file}).token()
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "Test %d", i)
			continue
		}
		require.NoError(t, err, "Test %d", i)
		require.Equal(t, tc.want, got, "Test %d", i)
	}
}

package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/reuseport"
	coretest "github.com/coredns/coredns/test"

	_ "github.com/bluegreen-dns/bluegreen/internal/build" // Standard plugins plus bluegreen.
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// The zone files have no $ORIGIN: they serve any zone.
	blueDB = `@   3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 120
@   3600 IN NS  ns1
www 60   IN A   10.1.0.1
`
	greenDB = `@   3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 120
@   3600 IN NS  ns1
www 60   IN A   10.2.0.1
`
	token = "reload-test-token"
)

// zones writes the pool files and a token file into a new directory.
func zones(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"blue.db": blueDB, "green.db": greenDB, "token": token + "\n", "other-token": "other\n", "empty-token": "\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600))
	}
	return dir
}

// block returns a server block for zone with a bluegreen switch called
// name and the extra lines.
func block(zone, name, dir string, extra ...string) string {
	return fmt.Sprintf(`%s:0 {
	bluegreen {
		pool blue %s/blue.db
		pool green %s/green.db
		name %s
		%s
	}
}
`, zone, dir, dir, name, strings.Join(extra, "\n\t\t"))
}

func start(t *testing.T, corefile string) *caddy.Instance {
	t.Helper()
	inst, err := coretest.CoreDNSServer(corefile)
	require.NoError(t, err, "starting CoreDNS with:\n%s", corefile)
	return inst
}

func stop(inst *caddy.Instance) {
	inst.Stop()
	inst.ShutdownCallbacks()
}

// api sends one request to the admin API at addr.
func api(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var v map[string]any
	json.Unmarshal(b, &v)
	return resp.StatusCode, v
}

// getList returns the names in GET /v1/switches.
func getList(t *testing.T, base string) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/switches", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var views []state.View
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&views))
	var names []string
	for _, v := range views {
		names = append(names, v.Name)
	}
	return names
}

// dnsAddr returns the UDP address of the server block of inst for zone.
func dnsAddr(t *testing.T, inst *caddy.Instance) string {
	t.Helper()
	udp, _ := coretest.CoreDNSServerPorts(inst, 0)
	require.NotEmpty(t, udp)
	return udp
}

func wwwAddr(t *testing.T, addr string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	r, err := dns.Exchange(m, addr)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1, "answer %v", r)
	return r.Answer[0].(*dns.A).A.String()
}

// TestReloadKeepsAPI: one listener serves the switches of two server
// blocks; a reload of the same Corefile keeps the API answering with the
// same weights and version, and a failed reload leaves it answering.
func TestReloadKeepsAPI(t *testing.T) {
	dir := zones(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	base := "http://" + admin
	t.Cleanup(func() { state.Forget("reload-a"); state.Forget("reload-b") })
	corefile := block("example.org", "reload-a", dir, "admin "+admin, "token "+dir+"/token") +
		block("example.net", "reload-b", dir, "admin "+admin, "token "+dir+"/token")

	inst := start(t, corefile)
	defer func() { stop(inst) }()

	assert.Equal(t, []string{"reload-a", "reload-b"}, getList(t, base), "one listener, both switches")
	assert.Equal(t, "10.1.0.1", wwwAddr(t, dnsAddr(t, inst)))

	code, v := api(t, "POST", base+"/v1/switches/reload-a/promote", `{"pool":"green","reason":"before reload"}`)
	require.Equal(t, http.StatusOK, code, "%v", v)
	require.Equal(t, 1.0, v["version"])
	assert.Equal(t, "10.2.0.1", wwwAddr(t, dnsAddr(t, inst)), "the next query is answered under the new weights")

	for i := range 3 {
		next, err := inst.Restart(coretest.NewInput(corefile))
		require.NoError(t, err, "reload %d", i)
		inst = next

		code, v = api(t, "GET", base+"/v1/switches/reload-a", "")
		require.Equal(t, http.StatusOK, code, "reload %d: %v", i, v)
		assert.Equal(t, 1.0, v["version"], "reload %d keeps the version", i)
		assert.Equal(t, map[string]any{"blue": 0.0, "green": 100.0}, v["weights"], "reload %d keeps the weights", i)
		assert.Equal(t, []string{"reload-a", "reload-b"}, getList(t, base))
		assert.Equal(t, "10.2.0.1", wwwAddr(t, dnsAddr(t, inst)))
	}

	// A Corefile that fails setup: the old instance, and its API, go on.
	bad := strings.Replace(corefile, dir+"/green.db", dir+"/missing.db", 1)
	_, err := inst.Restart(coretest.NewInput(bad))
	require.Error(t, err, "a reload with a missing zone file must fail")
	code, v = api(t, "GET", base+"/v1/switches/reload-a", "")
	require.Equal(t, http.StatusOK, code, "the API answers after a failed reload: %v", v)
	assert.Equal(t, 1.0, v["version"])
	code, _ = api(t, "GET", base+"/healthz", "")
	assert.Equal(t, http.StatusOK, code)

	// Writes still work, and a good reload after the failed one too.
	code, v = api(t, "PUT", base+"/v1/switches/reload-a/weights", `{"weights":{"blue":1,"green":0}}`)
	require.Equal(t, http.StatusOK, code, "%v", v)
	next, err := inst.Restart(coretest.NewInput(corefile))
	require.NoError(t, err)
	inst = next
	code, v = api(t, "GET", base+"/v1/switches/reload-a", "")
	require.Equal(t, http.StatusOK, code, "%v", v)
	assert.Equal(t, 2.0, v["version"])
}

// TestReloadMovesAPI: a reload that changes the admin address stops the
// old listener and starts the new one.
func TestReloadMovesAPI(t *testing.T) {
	dir := zones(t)
	a1 := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	a2 := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("move") })

	inst := start(t, block("example.org", "move", dir, "admin "+a1, "token "+dir+"/token"))
	defer func() { stop(inst) }()
	code, _ := api(t, "GET", "http://"+a1+"/v1/switches/move", "")
	require.Equal(t, http.StatusOK, code)

	next, err := inst.Restart(coretest.NewInput(block("example.org", "move", dir, "admin "+a2, "token "+dir+"/token")))
	require.NoError(t, err)
	inst = next
	code, _ = api(t, "GET", "http://"+a2+"/v1/switches/move", "")
	assert.Equal(t, http.StatusOK, code)
	_, err = net.DialTimeout("tcp", a1, time.Second)
	assert.Error(t, err, "the old address is closed")

	next, err = inst.Restart(coretest.NewInput(block("example.org", "move", dir, "admin off")))
	require.NoError(t, err)
	inst = next
	_, err = net.DialTimeout("tcp", a2, time.Second)
	assert.Error(t, err, "admin off: no listener")
}

// TestShutdownClosesAPI: the final shutdown closes the listener.
func TestShutdownClosesAPI(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("shutdown") })
	inst := start(t, block("example.org", "shutdown", dir, "admin "+addr))
	code, _ := api(t, "GET", "http://"+addr+"/healthz", "")
	require.Equal(t, http.StatusOK, code)
	stop(inst)
	_, err := net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the listener is closed after the final shutdown")
}

// An admin address another process listens on, even with SO_REUSEPORT as
// a second CoreDNS would, fails startup instead of sharing the port (and
// half the API's connections) with it.
func TestAdminAddressTaken(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	other, err := reuseport.Listen("tcp", addr)
	require.NoError(t, err)
	defer other.Close()
	t.Cleanup(func() { state.Forget("taken") })
	inst, err := coretest.CoreDNSServer(block("example.org", "taken", dir, "admin "+addr))
	if err == nil {
		stop(inst)
	}
	require.ErrorContains(t, err, "address already in use")
	assert.ErrorContains(t, err, "admin "+addr)
}

func TestSetupAdminErrors(t *testing.T) {
	dir := zones(t)
	port := freeport.T(t)
	lo := fmt.Sprintf("127.0.0.1:%d", port)
	t.Cleanup(func() {
		for _, n := range []string{"e1", "e2"} {
			state.Forget(n)
		}
	})
	tests := []struct {
		corefile string
		want     string
	}{
		{block("example.org", "e1", dir, "admin 192.0.2.1:8053"), "a token is required"},
		{block("example.org", "e1", dir, fmt.Sprintf("admin 0.0.0.0:%d", port)), "a token is required"},
		{block("example.org", "e1", dir, fmt.Sprintf("admin :%d", port)), "a token is required"},
		{block("example.org", "e1", dir, fmt.Sprintf("admin [::]:%d", port)), "a token is required"},
		{block("example.org", "e1", dir, "admin admin.example:8053"), "a token is required"},
		{block("example.org", "e1", dir, "admin 127.0.0.1"), "admin: address"},
		{block("example.org", "e1", dir, "admin 127.0.0.1:0"), "port must be from 1 to 65535"},
		{block("example.org", "e1", dir, "admin 127.0.0.1:65536"), "port must be from 1 to 65535"},
		{block("example.org", "e1", dir, "admin"), "admin: want"},
		{block("example.org", "e1", dir, "admin a b"), "admin: want"},
		{block("example.org", "e1", dir, "admin "+lo, "token "+dir+"/missing"), "token: open"},
		{block("example.org", "e1", dir, "admin "+lo, "token "+dir+"/empty-token"), "is empty"},
		{block("example.org", "e1", dir, "admin "+lo, "token"), "token: want"},
		// One address, different tokens (or a token and none).
		{block("example.org", "e1", dir, "admin "+lo, "token "+dir+"/token") +
			block("example.net", "e2", dir, "admin "+lo, "token "+dir+"/other-token"), "must have the same token"},
		{block("example.org", "e1", dir, "admin "+lo, "token "+dir+"/token") +
			block("example.net", "e2", dir, "admin "+lo), "must have the same token"},
		// localhost and 127.0.0.1 are one socket.
		{block("example.org", "e1", dir, fmt.Sprintf("admin localhost:%d", port)) +
			block("example.net", "e2", dir, "admin "+lo, "token "+dir+"/token"), "must have the same token"},
	}
	for i, tc := range tests {
		inst, err := coretest.CoreDNSServer(tc.corefile)
		if err == nil {
			stop(inst)
			t.Errorf("Test %d: expected an error containing %q, got none for:\n%s", i, tc.want, tc.corefile)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: expected an error containing %q, got %q", i, tc.want, err)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("Test %d: the token leaked into the error %q", i, err)
		}
	}
	_, err := net.DialTimeout("tcp", lo, 200*time.Millisecond)
	assert.Error(t, err, "no listener is left behind by a failed setup")
}

// TestSetupAdminNonLoopbackWithToken: a non-loopback address is fine with
// a token, and then the token is required.
func TestSetupAdminNonLoopbackWithToken(t *testing.T) {
	dir := zones(t)
	port := freeport.T(t)
	t.Cleanup(func() { state.Forget("wide") })
	inst := start(t, block("example.org", "wide", dir, fmt.Sprintf("admin 0.0.0.0:%d", port), "token "+dir+"/token"))
	defer stop(inst)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	code, _ := api(t, "GET", base+"/v1/switches/wide", "")
	assert.Equal(t, http.StatusOK, code)

	resp, err := http.Get(base + "/v1/switches/wide")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

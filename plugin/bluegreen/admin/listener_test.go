package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/pkg/reuseport"
	coretest "github.com/coredns/coredns/test"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminSocketNotShared: after startup, and after a reload, a second
// bind of the admin address fails even with SO_REUSEPORT (the listener
// has no SO_REUSEPORT), while the API answers.
func TestAdminSocketNotShared(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("notshared") })
	corefile := block("example.org", "notshared", dir, "admin "+addr, "token "+dir+"/token")
	inst := start(t, corefile)
	defer func() { stop(inst) }()
	for i := range 2 {
		code, _ := api(t, "GET", "http://"+addr+"/healthz", "")
		require.Equal(t, http.StatusOK, code, "round %d", i)
		other, err := reuseport.Listen("tcp", addr)
		if err == nil {
			other.Close()
		}
		require.Error(t, err, "round %d: a SO_REUSEPORT bind of the admin address must fail", i)
		assert.ErrorContains(t, err, "address already in use", "round %d", i)
		next, err := inst.Restart(coretest.NewInput(corefile))
		require.NoError(t, err)
		inst = next
	}
}

// TestReloadUnderLoad: 4 keep-alive writers and 4 readers across 10
// Corefile reloads: no request fails, every write is acknowledged once,
// and the history holds every version from 1 to the last without a gap.
func TestReloadUnderLoad(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	base := "http://" + addr
	t.Cleanup(func() { state.Forget("busy") })
	corefile := block("example.org", "busy", dir, "admin "+addr, "token "+dir+"/token")
	inst := start(t, corefile)
	defer func() { stop(inst) }()

	var (
		stopped  atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		acked    []uint64
		reads    atomic.Int64
		dials    atomic.Int64
	)
	// Every client keeps one connection: a reload closes none, so the 8
	// clients dial 8 times in all.
	client := func() *http.Client {
		d := &net.Dialer{}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			},
		}}
	}
	fail := func(s string) {
		mu.Lock()
		failures = append(failures, s)
		mu.Unlock()
	}
	do := func(c *http.Client, method, url, body string) (int, []byte, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	for w := range 4 {
		wg.Add(2)
		go func() { // writer: one keep-alive connection
			defer wg.Done()
			c := client()
			for i := 0; !stopped.Load(); i++ {
				body := fmt.Sprintf(`{"weights":{"blue":%d,"green":%d},"reason":"w%d-%d"}`, 1+i%7, w, w, i)
				code, b, err := do(c, "PUT", base+"/v1/switches/busy/weights", body)
				if err != nil || code != http.StatusOK {
					fail(fmt.Sprintf("writer %d: PUT: %d %s %v", w, code, b, err))
					continue
				}
				var v state.View
				if err := json.Unmarshal(b, &v); err != nil {
					fail(fmt.Sprintf("writer %d: %v", w, err))
					continue
				}
				mu.Lock()
				acked = append(acked, v.Version)
				mu.Unlock()
			}
		}()
		go func() { // reader: one keep-alive connection
			defer wg.Done()
			c := client()
			for !stopped.Load() {
				code, b, err := do(c, "GET", base+"/v1/switches/busy", "")
				if err != nil || code != http.StatusOK {
					fail(fmt.Sprintf("reader: GET: %d %s %v", code, b, err))
					continue
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 10 {
		time.Sleep(200 * time.Millisecond)
		next, err := inst.Restart(coretest.NewInput(corefile))
		if !assert.NoError(t, err, "reload %d", i) {
			break
		}
		inst = next
	}
	time.Sleep(200 * time.Millisecond)
	stopped.Store(true)
	wg.Wait()

	assert.Empty(t, failures, "failed requests")
	assert.Equal(t, int64(8), dials.Load(), "connections dialled by 8 keep-alive clients: a reload must close none")
	require.NotEmpty(t, acked, "no write was acknowledged")
	assert.Positive(t, reads.Load(), "no read was answered")
	slices.Sort(acked)
	for i, v := range acked {
		require.Equal(t, uint64(i+1), v, "acknowledged versions: each once, from 1, without a gap")
	}
	code, b, err := do(http.DefaultClient, "GET", base+"/v1/switches/busy/history", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", b)
	var hist []struct {
		Version uint64 `json:"version"`
	}
	require.NoError(t, json.Unmarshal(b, &hist))
	var versions []uint64
	for _, h := range hist {
		versions = append(versions, h.Version)
	}
	slices.Sort(versions)
	// The history may be capped: its newest entries end at the last version
	// and are contiguous.
	require.NotEmpty(t, versions)
	assert.Equal(t, acked[len(acked)-1], versions[len(versions)-1], "the newest history entry is the last acknowledged version")
	for i := 1; i < len(versions); i++ {
		require.Equal(t, versions[i-1]+1, versions[i], "history versions without a gap: %v", versions)
	}
	t.Logf("%d writes, %d reads across 10 reloads", len(acked), reads.Load())
}

// pki is a test CA with a server certificate for 127.0.0.1 and localhost
// and a client certificate, written as PEM files into dir.
type pki struct {
	dir                      string
	ca, serverCert, clientKP string
	pool                     *x509.CertPool
	client                   tls.Certificate
	caKey                    *ecdsa.PrivateKey
	caCert                   *x509.Certificate
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bluegreen test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &pki{dir: dir, caKey: key, caCert: caCert, pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.ca = filepath.Join(dir, "ca.pem")
	writePEM(t, p.ca, "CERTIFICATE", der)
	p.issue(t, "server", 2)
	certPEM, keyPEM := p.issue(t, "client", 3)
	p.client, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return p
}

// issue makes a certificate (server: for 127.0.0.1 and localhost; client:
// for client auth) and writes NAME.pem and NAME-key.pem.
func (p *pki) issue(t *testing.T, name string, serial int64) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if name == "client" {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	keyPEM := writePEM(t, filepath.Join(p.dir, name+"-key.pem"), "EC PRIVATE KEY", kder)
	return certPEM, keyPEM
}

func writePEM(t *testing.T, file, typ string, der []byte) []byte {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	require.NoError(t, os.WriteFile(file, b, 0o600))
	return b
}

// get sends GET url with client c and returns the status.
func get(c *http.Client, url string) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func tlsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs},
	}}
}

// TestAdminTLS: 'tls CERT KEY' serves HTTPS with TLS 1.2 at least; plain
// HTTP to it is refused; a reload re-reads the certificate files.
func TestAdminTLS(t *testing.T) {
	dir := zones(t)
	p := newPKI(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("tls") })
	corefile := block("example.org", "tls", dir, "admin "+addr+" {", "tls "+dir+"/server.pem "+dir+"/server-key.pem", "}", "token "+dir+"/token")
	inst := start(t, corefile)
	defer func() { stop(inst) }()

	c := tlsClient(p.pool)
	code, err := get(c, "https://"+addr+"/v1/switches/tls")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)

	// TLS 1.1 is refused.
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
	}}
	_, err = get(old, "https://"+addr+"/healthz")
	assert.Error(t, err, "TLS 1.1 must be refused")

	// Plain HTTP gets net/http's 400 for an HTTP request to an HTTPS server,
	// and never the API.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP to a TLS listener: %s", b)
		assert.Contains(t, string(b), "HTTPS server")
	}

	// A reload re-reads the files: a new server certificate is presented on
	// new connections.
	p.issue(t, "server", 99)
	next, err := inst.Restart(coretest.NewInput(corefile))
	require.NoError(t, err)
	inst = next
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.pool})
	require.NoError(t, err)
	serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	conn.Close()
	assert.Equal(t, int64(99), serial, "the certificate after the reload")

	// A reload to plain HTTP: a connection made under TLS is not served on.
	plain := block("example.org", "tls", dir, "admin "+addr, "token "+dir+"/token")
	code, err = get(c, "https://"+addr+"/healthz") // a keep-alive connection
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	next, err = inst.Restart(coretest.NewInput(plain))
	require.NoError(t, err)
	inst = next
	code, err = get(c, "https://"+addr+"/healthz")
	if err == nil {
		assert.Equal(t, http.StatusMisdirectedRequest, code, "a TLS connection after the switch to plain HTTP")
	}
	code, err = get(http.DefaultClient, "http://"+addr+"/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "plain HTTP after the reload")
}

// TestAdminMTLS: 'tls CERT KEY CA' requires a client certificate the CA
// signed; with it a non-loopback listener needs no token.
func TestAdminMTLS(t *testing.T) {
	dir := zones(t)
	p := newPKI(t, dir)
	port := freeport.T(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	t.Cleanup(func() { state.Forget("mtls") })
	// 0.0.0.0 with mTLS and no token starts.
	corefile := block("example.org", "mtls", dir, fmt.Sprintf("admin 0.0.0.0:%d {", port), "tls "+dir+"/server.pem "+dir+"/server-key.pem "+dir+"/ca.pem", "}")
	inst := start(t, corefile)
	defer func() { stop(inst) }()

	code, err := get(tlsClient(p.pool, p.client), "https://"+addr+"/v1/switches/mtls")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "a client with a certificate from the CA")

	_, err = get(tlsClient(p.pool), "https://"+addr+"/v1/switches/mtls")
	assert.Error(t, err, "a client without a certificate must be refused")

	// A certificate from another CA is refused too.
	other := newPKI(t, t.TempDir())
	_, err = get(tlsClient(p.pool, other.client), "https://"+addr+"/v1/switches/mtls")
	assert.Error(t, err, "a client certificate from another CA must be refused")
}

// TestAdminHosts: a name in 'hosts' passes the Host check, any other name
// is still refused with 403.
func TestAdminHosts(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("hosts") })
	inst := start(t, block("example.org", "hosts", dir, "admin "+addr+" {", "hosts bluegreen-admin.dns.svc bluegreen-admin.dns.svc.cluster.local.", "}", "token "+dir+"/token"))
	defer stop(inst)
	for i, tc := range []struct {
		host string
		code int
	}{
		{"bluegreen-admin.dns.svc:8053", http.StatusOK},
		{"bluegreen-admin.dns.svc", http.StatusOK},
		{"BlueGreen-Admin.dns.svc.cluster.local:8053", http.StatusOK},
		{"bluegreen-admin.dns.svc.cluster.local.", http.StatusOK},
		{"other.dns.svc:8053", http.StatusForbidden},
		{"bluegreen-admin.dns.svc.attacker.example", http.StatusForbidden},
		{"admin.dns.svc", http.StatusForbidden},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/switches/hosts", nil)
		req.Host = tc.host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tc.code, resp.StatusCode, "Test %d: Host %s", i, tc.host)
	}
}

// TestSetupAdminBlockErrors: bad admin blocks fail setup at their line.
func TestSetupAdminBlockErrors(t *testing.T) {
	dir := zones(t)
	newPKI(t, dir)
	port := freeport.T(t)
	lo := fmt.Sprintf("127.0.0.1:%d", port)
	cert, key := dir+"/server.pem", dir+"/server-key.pem"
	t.Cleanup(func() { state.Forget("b1"); state.Forget("b2") })
	for i, tc := range []struct {
		corefile string
		want     string
	}{
		{block("example.org", "b1", dir, "admin "+lo+" {", "hosts a.example", "hosts b.example", "}"), "Corefile:8 - Error during parsing: admin: hosts: declared twice (first at Corefile:7)"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "hosts *.svc", "}"), "Corefile:7 - Error during parsing: admin: hosts: \"*.svc\" is not a DNS name"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "hosts a..b", "}"), "is not a DNS name"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "hosts", "}"), "want 'hosts NAME...'"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert, "}"), "want 'tls CERT KEY [CA]'"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert+" "+dir+"/missing.pem", "}"), "Corefile:7 - Error during parsing: admin: tls: open " + dir + "/missing.pem"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert+" "+dir+"/blue.db", "}"), "admin: tls:"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert+" "+key+" "+dir+"/blue.db", "}"), "no PEM certificate"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert+" "+key, "tls "+cert+" "+key, "}"), "admin: tls: declared twice"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "bogus", "}"), "admin: unknown property 'bogus'"},
		{block("example.org", "b1", dir, "admin off {", "}"), "want '{' after the address"},
		{block("example.org", "b1", dir, fmt.Sprintf("admin 0.0.0.0:%d {", port), "tls "+cert+" "+key, "}"), "a token is required"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "hosts a.example", "}") + block("example.net", "b2", dir, "admin "+lo), "must have the same hosts"},
		{block("example.org", "b1", dir, "admin "+lo+" {", "tls "+cert+" "+key, "}") + block("example.net", "b2", dir, "admin "+lo), "must have the same tls"},
	} {
		inst, err := coretest.CoreDNSServer(tc.corefile)
		if err == nil {
			stop(inst)
		}
		if assert.Error(t, err, "Test %d: expected an error for\n%s", i, tc.corefile) {
			assert.Contains(t, err.Error(), tc.want, "Test %d", i)
		}
	}
}

// TestEchoedNamesCapped: an error body echoes at most 64 characters of any
// name from the request (a pool, a hold, a Host, an Origin).
func TestEchoedNamesCapped(t *testing.T) {
	dir := zones(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	base := "http://" + addr
	t.Cleanup(func() { state.Forget("capped") })
	inst := start(t, block("example.org", "capped", dir, "admin "+addr, "token "+dir+"/token"))
	defer stop(inst)
	long := strings.Repeat("x", 60000)
	for i, tc := range []struct {
		method, path, body string
		host, origin       string
		code               int
	}{
		{"PUT", "/v1/switches/capped/weights", `{"weights":{"blue":1,"green":0,"` + long + `":1}}`, "", "", http.StatusBadRequest},
		{"POST", "/v1/switches/capped/promote", `{"pool":"` + long + `"}`, "", "", http.StatusBadRequest},
		{"POST", "/v1/switches/capped/rollout", `{"steps":[{"weights":{"blue":1,"green":0},"hold":"` + long + `"}]}`, "", "", http.StatusBadRequest},
		{"GET", "/v1/switches/capped", "", "a" + long[:200], "", http.StatusForbidden},
		{"GET", "/v1/switches/capped", "", "", "http://" + long[:200], http.StatusForbidden},
	} {
		var rd io.Reader
		if tc.body != "" {
			rd = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, base+tc.path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.code, resp.StatusCode, "Test %d: %s", i, b)
		assert.Less(t, len(b), 300, "Test %d: error body of %d bytes: %.300s", i, len(b), b)
		assert.Contains(t, string(b), `xxxx\"...`, "Test %d: the name, cut", i)
	}
}

// TestOriginScheme: an Origin whose scheme is not the listener's is
// cross-origin, with the same host and port.
func TestOriginScheme(t *testing.T) {
	dir := zones(t)
	p := newPKI(t, dir)
	plainAddr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	t.Cleanup(func() { state.Forget("origin-a"); state.Forget("origin-b") })
	inst := start(t, block("example.org", "origin-a", dir, "admin "+plainAddr, "token "+dir+"/token")+
		block("example.net", "origin-b", dir, "admin "+tlsAddr+" {", "tls "+dir+"/server.pem "+dir+"/server-key.pem", "}", "token "+dir+"/token"))
	defer stop(inst)
	c := tlsClient(p.pool)
	for i, tc := range []struct {
		url, origin string
		code        int
	}{
		{"http://" + plainAddr + "/v1/switches/origin-a", "http://" + plainAddr, http.StatusOK},
		{"http://" + plainAddr + "/v1/switches/origin-a", "https://" + plainAddr, http.StatusForbidden},
		{"https://" + tlsAddr + "/v1/switches/origin-b", "https://" + tlsAddr, http.StatusOK},
		{"https://" + tlsAddr + "/v1/switches/origin-b", "http://" + tlsAddr, http.StatusForbidden},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Origin", tc.origin)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tc.code, resp.StatusCode, "Test %d: %s with Origin %s", i, tc.url, tc.origin)
	}
}

// lockedBuffer is a log sink safe to read while servers log.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPlainWarning: a listener off loopback without tls starts and logs
// one warning naming the risk, not one per reload; with tls, or on
// loopback, none.
func TestPlainWarning(t *testing.T) {
	var logs lockedBuffer
	clog.SetOutput(&logs)
	defer clog.Discard()
	dir := zones(t)
	newPKI(t, dir)
	port := freeport.T(t)
	t.Cleanup(func() { state.Forget("warn") })
	const risk = "over plain HTTP: the token and every change cross the network unencrypted"
	plain := block("example.org", "warn", dir, fmt.Sprintf("admin 0.0.0.0:%d", port), "token "+dir+"/token")
	inst := start(t, plain)
	defer func() { stop(inst) }()
	code, err := get(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "the listener starts")
	for range 2 {
		next, err := inst.Restart(coretest.NewInput(plain))
		require.NoError(t, err)
		inst = next
	}
	assert.Equal(t, 1, strings.Count(logs.String(), risk), "one warning across start and two reloads:\n%s", logs.String())

	secure := block("example.org", "warn", dir, fmt.Sprintf("admin 0.0.0.0:%d {", port), "tls "+dir+"/server.pem "+dir+"/server-key.pem", "}", "token "+dir+"/token")
	next, err := inst.Restart(coretest.NewInput(secure))
	require.NoError(t, err)
	inst = next
	assert.Equal(t, 1, strings.Count(logs.String(), risk), "no warning with tls")
	next, err = inst.Restart(coretest.NewInput(plain))
	require.NoError(t, err)
	inst = next
	assert.Equal(t, 2, strings.Count(logs.String(), risk), "a warning again when tls is taken away")
}

// TestFailedReloadGivesSocketBack: a reload whose second admin address
// cannot be bound fails after the first socket was handed over; the first
// goes back to the old configuration (its token), without being closed.
func TestFailedReloadGivesSocketBack(t *testing.T) {
	dir := zones(t)
	a1 := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	a2 := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	t.Cleanup(func() { state.Forget("back-a"); state.Forget("back-b") })
	inst := start(t, block("example.org", "back-a", dir, "admin "+a1, "token "+dir+"/token")+
		block("example.net", "back-b", dir, "admin "+a2, "token "+dir+"/token"))
	defer func() { stop(inst) }()

	// A keep-alive connection made before the failed reload.
	c := &http.Client{Timeout: 5 * time.Second}
	code, err := get(c, "http://"+a1+"/v1/switches/back-a")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)

	bad := block("example.org", "back-a", dir, "admin "+a1, "token "+dir+"/other-token") +
		block("example.net", "back-b", dir, "admin "+taken.Addr().String(), "token "+dir+"/token")
	_, err = inst.Restart(coretest.NewInput(bad))
	require.Error(t, err, "the second address is taken")

	code, err = get(c, "http://"+a1+"/v1/switches/back-a")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "the old token works again on the same connection")
	code, err = get(&http.Client{Timeout: 5 * time.Second}, "http://"+a2+"/v1/switches/back-b")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "the other address serves on")
}

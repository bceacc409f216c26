package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// moduleDir is this module's directory, taken before startPlugin moves
// the process into the stand-in controller's working directory.
var moduleDir string

// repoRoot is the bluegreen repository this module sits in.
func repoRoot(t testing.TB) string {
	return filepath.Dir(filepath.Dir(moduleDir))
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// builtOrEnv returns $env when set, else builds pkg (relative to dir) once per
// test process into a temporary directory.
func builtOrEnv(t testing.TB, env, dir, pkg, name string) string {
	t.Helper()
	if b := os.Getenv(env); b != "" {
		return b
	}
	if testing.Short() {
		t.Skipf("short mode: not building %s; set %s or run make test", name, env)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[name]; ok {
		return b
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[name] = out
	return out
}

// buildDir holds the binaries this test process builds; TestMain removes it.
var buildDir string

// coreDNS is the bluegreen server: $BLUEGREEN_BINARY (make test sets it),
// else built from this repository.
func coreDNS(t testing.TB) string {
	return builtOrEnv(t, "BLUEGREEN_BINARY", repoRoot(t), "./cmd/coredns", "coredns")
}

// pluginBinary is this module's binary: $ROLLOUTS_PLUGIN_BINARY, else built.
func pluginBinary(t testing.TB) string {
	return builtOrEnv(t, "ROLLOUTS_PLUGIN_BINARY", moduleDir, ".", "rollouts-plugin-trafficrouter-bluegreen")
}

// freePort returns a loopback port free for TCP and UDP, reserved with the
// same flock(2) files as the repository's internal/freeport, so test
// binaries of both modules never hand out one port twice.
func freePort(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "bluegreen-ports")
	require.NoError(t, os.MkdirAll(dir, 0o777))
	for range 200 {
		port := 20000 + rand.IntN(12000)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close()
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			f.Close()
			continue
		}
		u.Close()
		heldPorts = append(heldPorts, f) // locked until the process exits
		return port
	}
	t.Fatal("no free loopback port")
	return 0
}

var heldPorts []*os.File

// server is a running bluegreen server on loopback.
type server struct {
	dns, api, token, dir string
	cmd                  *exec.Cmd
	out                  *logBuf
}

// The zones: www.example.org TXT names the pool that answered.
var zones = map[string]string{
	"base.db": `$ORIGIN example.org.
$TTL 300
@ IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@ IN NS ns1.example.org.
ns1 IN A 127.0.0.1
`,
	"blue.db": `$ORIGIN example.org.
$TTL 300
www IN TXT "blue"
`,
	"green.db": `$ORIGIN example.org.
$TTL 300
www IN TXT "green"
`,
}

// switchName is the test server's switch.
const switchName = "example.org"

// ttlMax is the test server's ttl MAX: how long after a change its
// effective_at lies.
const ttlMax = 3

// startServer runs the bluegreen server with a bbolt store, an admin API
// with a token, and ttl 3 1, all on loopback; it is killed at the end of
// the test.
func startServer(t testing.TB) *server {
	t.Helper()
	dir := t.TempDir()
	for name, body := range zones {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	s := &server{dir: dir, token: "s3cret-" + strconv.Itoa(rand.Int())}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte(s.token+"\n"), 0o600))
	dnsPort, apiPort := freePort(t), freePort(t)
	s.dns = fmt.Sprintf("127.0.0.1:%d", dnsPort)
	s.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	corefile := fmt.Sprintf(`example.org:%d {
	bind 127.0.0.1
	bluegreen {
		base base.db
		pool blue blue.db
		pool green green.db
		weights blue 100 green 0
		ttl %d 1
		store state.db
		admin 127.0.0.1:%d
		token token
	}
}
`, dnsPort, ttlMax, apiPort)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644))
	s.out = &logBuf{}
	s.cmd = exec.Command(coreDNS(t), "-conf", filepath.Join(dir, "Corefile"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the server exited:\n%s", s.out.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "the admin API did not answer within 30s:\n%s", s.out.String())
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// logBuf collects a process's output; the process writes while a test
// may read.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// apiState is the admin API's state object, as the tests read it.
type apiState struct {
	Version     uint64            `json:"version"`
	Weights     map[string]uint64 `json:"weights"`
	UpdatedAt   time.Time         `json:"updated_at"`
	EffectiveAt time.Time         `json:"effective_at"`
}

// call runs one admin API request with the token; it returns the status
// and the body.
func (s *server) call(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.api+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// state reads the switch's state.
func (s *server) state(t testing.TB) apiState {
	t.Helper()
	code, b := s.call(t, http.MethodGet, "/v1/switches/"+switchName, "")
	require.Equal(t, http.StatusOK, code, "GET the switch: %s", b)
	var st apiState
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}

// history returns the reasons of the switch's changes, newest first.
func (s *server) history(t testing.TB) []string {
	t.Helper()
	code, b := s.call(t, http.MethodGet, "/v1/switches/"+switchName+"/history", "")
	require.Equal(t, http.StatusOK, code, "GET the history: %s", b)
	var h []struct {
		Reason string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(b, &h))
	var out []string
	for _, c := range h {
		out = append(out, c.Reason)
	}
	return out
}

// subnet is the i-th client /24, counting from 11.0.0.0.
func subnet(i int) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 0x0B000000+uint32(i)<<8)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// refPool is the pool the spec's selection gives a client key (SPEC §3;
// the plugin README names the hash): p = XXH64(BE64(XXH64(switch)) ||
// family || masked address), the first pool i with p*Σw/2^64 < W_i.
func refPool(key netip.Addr, pools []string, weights []uint64) string {
	buf := binary.BigEndian.AppendUint64(nil, xxhash.Sum64String(switchName))
	a := key.As4()
	buf = append(append(buf, 4), a[:]...)
	p := xxhash.Sum64(buf)
	var total, cum uint64
	for _, w := range weights {
		total += w
	}
	hi, _ := bits.Mul64(p, total)
	for i, w := range weights {
		cum += w
		if hi < cum {
			return pools[i]
		}
	}
	return pools[len(pools)-1]
}

// poolsByClient asks www.example.org TXT as each client subnet (ECS) and
// returns the pool that answered each, with workers in parallel; a lost
// UDP query is asked again.
func poolsByClient(t testing.TB, addr string, clients []netip.Prefix) []string {
	t.Helper()
	out := make([]string, len(clients))
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Timeout: 500 * time.Millisecond}
			for i := w; i < len(clients); i += 8 {
				m := new(dns.Msg)
				m.SetQuestion("www.example.org.", dns.TypeTXT)
				o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
				o.SetUDPSize(1232)
				o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
					SourceNetmask: uint8(clients[i].Bits()), Address: clients[i].Addr().AsSlice()})
				m.Extra = append(m.Extra, o)
				var r *dns.Msg
				var err error
				for range 5 {
					if r, _, err = c.Exchange(m, addr); err == nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("client %s: %v", clients[i], err)
					return
				}
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					errs <- fmt.Errorf("client %s: want one TXT, got\n%s", clients[i], r)
					return
				}
				txt, ok := r.Answer[0].(*dns.TXT)
				if !ok || len(txt.Txt) != 1 {
					errs <- fmt.Errorf("client %s: want one TXT, got\n%s", clients[i], r)
					return
				}
				out[i] = txt.Txt[0]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

func runCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

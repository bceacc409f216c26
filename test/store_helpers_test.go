package test

// Helpers for the end-to-end tests of durable state (store_e2e_test.go,
// crash_test.go): they run the built CoreDNS binary with a Corefile in a
// temporary directory and drive it with curl and DNS queries.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/miekg/dns"
)

// The pools: every answer for www.example.org is one of these addresses.
const (
	storeBlueIP  = "10.1.0.1"
	storeGreenIP = "10.2.0.1"
	storeZone    = "example.org"
	storeRecTTL  = 60
)

// storeZones writes a base and two pool zone files into dir.
func storeZones(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"base.db": `$ORIGIN example.org.
$TTL 300
@    IN SOA ns1.example.org. hostmaster.example.org. 2026112201 7200 3600 1209600 120
@    IN NS  ns1.example.org.
ns1  IN A   192.0.2.53
`,
		"blue.db": fmt.Sprintf(`$ORIGIN example.org.
$TTL %d
www  IN A   %s
`, storeRecTTL, storeBlueIP),
		"green.db": fmt.Sprintf(`$ORIGIN example.org.
$TTL %d
www  IN A   %s
`, storeRecTTL, storeGreenIP),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// storeConf is what varies between the tests' Corefiles.
type storeConf struct {
	TTLMax int    // ttl MAX; 0: 30
	Extra  string // more lines for the server block (e.g. "reload 2s 0s")
}

// storeServer is one CoreDNS process (restartable) over one directory.
type storeServer struct {
	t         *testing.T
	bin       string
	dir       string
	corefile  string
	dnsAddr   string
	adminAddr string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *os.File
	starts    int
}

// storeNewServer writes zones and a Corefile into a fresh directory; the
// process starts with Start.
func storeNewServer(t *testing.T, conf storeConf) *storeServer {
	t.Helper()
	s := &storeServer{
		t:         t,
		bin:       harness.Binary(t),
		dir:       t.TempDir(),
		dnsAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	s.corefile = filepath.Join(s.dir, "Corefile")
	storeZones(t, s.dir)
	s.WriteCorefile(conf)
	var err error
	if s.log, err = os.Create(filepath.Join(s.dir, "coredns.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			s.DumpLog()
		}
		s.log.Close()
	})
	return s
}

// WriteCorefile (re)writes the Corefile.
func (s *storeServer) WriteCorefile(conf storeConf) {
	if conf.TTLMax == 0 {
		conf.TTLMax = 30
	}
	_, port, _ := net.SplitHostPort(s.dnsAddr)
	body := fmt.Sprintf(`%s:%s {
    bind 127.0.0.1
    bluegreen {
        base %s
        pool blue %s
        pool green %s
        weights blue 90 green 10
        ttl %d 1
        store %s
        admin %s
    }
    %s
}
`, storeZone, port,
		filepath.Join(s.dir, "base.db"), filepath.Join(s.dir, "blue.db"), filepath.Join(s.dir, "green.db"),
		conf.TTLMax, filepath.Join(s.dir, "state.db"), s.adminAddr, conf.Extra)
	// Write and rename, so a reload never reads half a file.
	tmp := s.corefile + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.corefile); err != nil {
		s.t.Fatal(err)
	}
}

// Start starts the process and waits until it is ready: the admin
// /healthz answers 200 and a DNS query is answered.
func (s *storeServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.DumpLog()
		s.t.Fatal(err)
	}
}

func (s *storeServer) start() error {
	s.starts++
	fmt.Fprintf(s.log, "=== start %d\n", s.starts)
	cmd := exec.Command(s.bin, "-conf", s.corefile)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(s.exited)

	deadline := time.Now().Add(15 * time.Second)
	healthy := false
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("start %d: coredns exited: %v", s.starts, cmd.ProcessState)
		default:
		}
		if !healthy {
			resp, err := storeHTTP.Get("http://" + s.adminAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
				healthy = resp.StatusCode == http.StatusOK
			}
		}
		if healthy {
			if _, err := s.query(netip.MustParsePrefix("198.51.100.0/24")); err == nil {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("start %d: coredns not ready after 15s", s.starts)
}

// StartFails starts the process and expects it to exit with an error
// before it serves; it returns the output of that start.
func (s *storeServer) StartFails() string {
	s.t.Helper()
	off, _ := s.log.Seek(0, 1)
	err := s.start()
	if err == nil {
		s.t.Fatalf("start %d: expected coredns to refuse to start, it serves", s.starts)
	}
	select {
	case <-s.exited:
	default:
		s.t.Fatalf("start %d: expected coredns to exit, it is still running: %v", s.starts, err)
	}
	if s.cmd.ProcessState.Success() {
		s.t.Errorf("start %d: expected a failing exit status, got %v", s.starts, s.cmd.ProcessState)
	}
	s.cmd = nil
	b, _ := os.ReadFile(s.log.Name())
	return string(b[off:])
}

// Kill sends SIGKILL and waits for the process to go.
func (s *storeServer) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Stop sends SIGTERM (a graceful shutdown) and waits for the process.
func (s *storeServer) Stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Errorf("coredns did not exit 10s after SIGTERM")
		s.Kill()
	}
	s.cmd = nil
}

// Signal sends sig to the process.
func (s *storeServer) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// Alive says whether the process is still running.
func (s *storeServer) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return s.cmd != nil
	}
}

// DumpLog writes the end of the process's output to the test log.
func (s *storeServer) DumpLog() {
	b, _ := os.ReadFile(s.log.Name())
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	s.t.Logf("coredns output (end):\n%s", b)
}

// LogContains says whether the process output so far contains sub.
func (s *storeServer) LogContains(sub string) bool {
	b, _ := os.ReadFile(s.log.Name())
	return bytes.Contains(b, []byte(sub))
}

var storeHTTP = &http.Client{Timeout: 5 * time.Second}

// storeState is the part of the API's state object the tests read.
type storeState struct {
	Name    string             `json:"name"`
	Version uint64             `json:"version"`
	Weights map[string]uint64  `json:"weights"`
	Shares  map[string]float64 `json:"shares"`
	Store   string             `json:"store"`
}

// storeCurl runs curl with args and returns the HTTP status and body.
func storeCurl(ctx context.Context, args ...string) (int, []byte, error) {
	args = append([]string{"-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"}, args...)
	out, err := exec.CommandContext(ctx, "curl", args...).Output()
	if err != nil {
		return 0, out, fmt.Errorf("curl %s: %w", strings.Join(args, " "), err)
	}
	i := bytes.LastIndexByte(out, '\n')
	var code int
	if _, err := fmt.Sscanf(string(out[i+1:]), "%d", &code); err != nil {
		return 0, out, fmt.Errorf("curl: no status in %q", out)
	}
	return code, out[:i], nil
}

func (s *storeServer) url(path string) string { return "http://" + s.adminAddr + path }

// PutArgs are curl's arguments for PUT weights (blue, green), with If-Match
// when ifMatch >= 0.
func (s *storeServer) PutArgs(blue, green uint64, ifMatch int64) []string {
	args := []string{"-X", "PUT", "-H", "Content-Type: application/json",
		"-d", fmt.Sprintf(`{"weights":{"blue":%d,"green":%d},"reason":"e2e"}`, blue, green)}
	if ifMatch >= 0 {
		args = append(args, "-H", fmt.Sprintf(`If-Match: "%d"`, ifMatch))
	}
	return append(args, s.url("/v1/switches/"+storeZone+"/weights"))
}

// Put changes the weights with curl and fails the test unless it gets 200
// with the new weights.
func (s *storeServer) Put(blue, green uint64, ifMatch int64) storeState {
	s.t.Helper()
	code, body, err := storeCurl(context.Background(), s.PutArgs(blue, green, ifMatch)...)
	if err != nil || code != http.StatusOK {
		s.t.Fatalf("PUT weights blue %d green %d: expected 200, got %d %s (%v)", blue, green, code, body, err)
	}
	var st storeState
	if err := json.Unmarshal(body, &st); err != nil {
		s.t.Fatalf("PUT weights: the body is not a state object: %v: %s", err, body)
	}
	if st.Weights["blue"] != blue || st.Weights["green"] != green {
		s.t.Fatalf("PUT weights blue %d green %d: the answer has %v", blue, green, st.Weights)
	}
	return st
}

// Get reads the switch's state with curl, checking the ETag.
func (s *storeServer) Get() storeState {
	s.t.Helper()
	st, err := s.get()
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *storeServer) get() (storeState, error) {
	code, body, err := storeCurl(context.Background(), s.url("/v1/switches/"+storeZone))
	if err != nil || code != http.StatusOK {
		return storeState{}, fmt.Errorf("GET switch: expected 200, got %d %s (%v)", code, body, err)
	}
	var st storeState
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET switch: the body is not a state object: %v: %s", err, body)
	}
	return st, nil
}

// GetHTTP reads the state with Go's client (for polling under load) and
// checks that the ETag matches the version.
func (s *storeServer) GetHTTP() (storeState, error) {
	var st storeState
	resp, err := storeHTTP.Get(s.url("/v1/switches/" + storeZone))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET switch: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, err
	}
	if et, want := resp.Header.Get("ETag"), fmt.Sprintf(`"%d"`, st.Version); et != want {
		return st, fmt.Errorf("GET switch: expected ETag %s, got %q", want, et)
	}
	return st, nil
}

// Points returns the sticky hash point of each client, from the API's
// explain endpoint (the pool a client gets under weights blue/green is
// blue exactly when point*(blue+green)/2^64 < blue, SPEC §3).
func (s *storeServer) Points(clients []netip.Prefix) ([]uint64, error) {
	points := make([]uint64, len(clients))
	for i, c := range clients {
		resp, err := storeHTTP.Get(s.url("/v1/switches/" + storeZone + "/explain?client=" + c.Addr().Next().String()))
		if err != nil {
			return nil, err
		}
		var e struct {
			Point *uint64 `json:"point"`
			Key   string  `json:"key"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("explain %s: status %d, %v", c, resp.StatusCode, err)
		}
		if e.Point == nil { // omitted when zero
			e.Point = new(uint64)
		}
		if e.Key != c.String() {
			return nil, fmt.Errorf("explain %s: expected key %s, got %q", c.Addr().Next(), c, e.Key)
		}
		points[i] = *e.Point
	}
	return points, nil
}

// storeBlueFor says whether a client at point gets blue under blue/green.
func storeBlueFor(point, blue, green uint64) bool {
	hi, _ := bits.Mul64(point, blue+green)
	return hi < blue
}

// storeClients returns n distinct client subnets (/24s).
func storeClients(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{byte(11 + i>>16), byte(i >> 8), byte(i), 0})
		out[i] = netip.PrefixFrom(a, 24)
	}
	return out
}

var errStoreNoAnswer = errors.New("no A record in the answer")

// query asks for www.example.org A as a client in subnet (ECS) and returns
// the answer's address and TTL.
func (s *storeServer) query(subnet netip.Prefix) (storeAnswer, error) {
	return storeQuery(s.dnsAddr, subnet)
}

type storeAnswer struct {
	IP  string
	TTL uint32
}

var storeDNS = &dns.Client{Net: "udp", Timeout: 2 * time.Second}

func storeQuery(addr string, subnet netip.Prefix) (storeAnswer, error) {
	m := new(dns.Msg)
	m.SetQuestion("www."+storeZone+".", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        1,
		SourceNetmask: uint8(subnet.Bits()),
		Address:       subnet.Addr().AsSlice(),
	})
	m.Extra = append(m.Extra, o)
	r, _, err := storeDNS.Exchange(m, addr)
	if err != nil {
		return storeAnswer{}, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return storeAnswer{}, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return storeAnswer{a.A.String(), a.Hdr.Ttl}, nil
		}
	}
	return storeAnswer{}, errStoreNoAnswer
}

// Sample asks once for every client and returns which got green, failing
// the test on any failed query or foreign answer.
func (s *storeServer) Sample(clients []netip.Prefix) []bool {
	s.t.Helper()
	green := make([]bool, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	const workers = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(clients); i += workers {
				a, err := s.query(clients[i])
				switch {
				case err != nil:
					errs[i] = err
				case a.IP == storeGreenIP:
					green[i] = true
				case a.IP != storeBlueIP:
					errs[i] = fmt.Errorf("answer %s is from neither pool", a.IP)
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.t.Fatalf("query as %s: %v", clients[i], err)
		}
	}
	return green
}

func storeShare(green []bool) float64 {
	n := 0
	for _, g := range green {
		if g {
			n++
		}
	}
	return float64(n) / float64(len(green))
}

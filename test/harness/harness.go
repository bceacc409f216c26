// Package harness runs the built CoreDNS binary for end-to-end tests: it
// finds or builds the binary, starts it with a Corefile in a temporary
// directory, waits for it to answer, and sends queries and API requests.
package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/bluegreen-dns/bluegreen/internal/logcapture"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Root returns the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Binary returns the CoreDNS binary to test: $BLUEGREEN_BINARY (set by
// `make test`), else one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("BLUEGREEN_BINARY"); b != "" {
		return b
	}
	if testing.Short() {
		t.Skip("short mode: not building the binary; set BLUEGREEN_BINARY or run make test")
	}
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "bluegreen-dns-e2e")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("coredns.%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/coredns")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// Each test binary renames its build to its own fixed path, so
		// repeated runs leave nothing behind and parallel ones do not clash.
		builtBin = filepath.Join(dir, fmt.Sprintf("coredns-%s", filepath.Base(os.Args[0])))
		buildErr = os.Rename(tmp, builtBin)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// NeedTool returns the path of tool, skipping the test when it is missing,
// or failing it under CI=true, where a missing tool is a failure.
func NeedTool(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: CI=true requires it (.ci/run installs it)", tool)
	}
	t.Skipf("%s not found; install it to run this test", tool)
	return ""
}

// FreePort returns a loopback port free for TCP and UDP, reserved for this
// test binary (see internal/freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	return freeport.T(t)
}

// Proc is a running CoreDNS.
type Proc struct {
	t       testing.TB
	Dir     string
	Conf    string
	args    []string
	cmd     *exec.Cmd
	out     *logcapture.Buffer
	done    chan struct{}
	exitErr error
}

// Start runs the binary with corefile (written to dir/Corefile) in dir,
// with args after "-conf dir/Corefile". It is killed at the end of the
// test.
func Start(t testing.TB, dir, corefile string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, Dir: dir, Conf: filepath.Join(dir, "Corefile"), args: args}
	if err := os.WriteFile(p.Conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("CoreDNS output (%s):\n%s", p.Conf, p.Output())
		}
	})
	return p
}

func (p *Proc) start() {
	p.cmd = exec.Command(Binary(p.t), append([]string{"-conf", p.Conf}, p.args...)...)
	p.cmd.Dir = p.Dir
	p.out = &logcapture.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		p.exitErr = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
}

// Restart starts the process again with the same Corefile (after Kill).
func (p *Proc) Restart() { p.start() }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitDNS waits until the server at addr answers a query for name.
func (p *Proc) WaitDNS(addr, name string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	for time.Now().Before(deadline) {
		if p.Exited() {
			p.t.Fatalf("CoreDNS exited: %v\n%s", p.exitErr, p.Output())
		}
		if r, _, err := c.Exchange(m, addr); err == nil && r != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("CoreDNS did not answer on %s within %s\n%s", addr, timeout, p.Output())
}

// WaitHTTP waits until url answers 200.
func (p *Proc) WaitHTTP(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			p.t.Fatalf("CoreDNS exited: %v\n%s", p.exitErr, p.Output())
		}
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%s did not answer 200 within %s\n%s", url, timeout, p.Output())
}

// WriteZones writes the blue/green example zones (base, blue, green) into
// dir and returns nothing; Corefiles refer to them as base.db, blue.db and
// green.db. Blue answers www with 192.0.2.1, green with 198.51.100.1.
func WriteZones(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{
		"base.db": `$ORIGIN example.org.
$TTL 300
@ IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@ IN NS ns1.example.org.
ns1 IN A 127.0.0.1
mail IN A 192.0.2.25
`,
		"blue.db": `$ORIGIN example.org.
$TTL 300
www IN A 192.0.2.1
`,
		"green.db": `$ORIGIN example.org.
$TTL 300
www IN A 198.51.100.1
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// PoolOf maps the example zones' www answer to its pool.
func PoolOf(r *dns.Msg) string {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			switch a.A.String() {
			case "192.0.2.1":
				return "blue"
			case "198.51.100.1":
				return "green"
			}
		}
	}
	return ""
}

// QueryECS asks addr for name/A as a client in subnet (a /24 like
// "10.1.2.0/24") and returns the reply.
func QueryECS(addr, name, subnet string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	if subnet != "" {
		ip, bits, err := parseSubnet(subnet)
		if err != nil {
			return nil, err
		}
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		fam := uint16(1)
		if ip.To4() == nil {
			fam = 2
		}
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(bits), Address: ip})
		m.Extra = append(m.Extra, o)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func parseSubnet(s string) (net.IP, int, error) {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, 0, err
	}
	ones, _ := n.Mask.Size()
	return n.IP, ones, nil
}

// Shares asks for www.example.org as n distinct /24 client subnets
// (ShareSubnet: 10.a.b.0/24) and returns the count per pool.
func Shares(t testing.TB, addr string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	var firstErr error
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r, err := QueryECS(addr, "www.example.org", ShareSubnet(i).String())
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					counts[PoolOf(r)]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("query failed: %v", firstErr)
	}
	return counts
}

// HTTP sends a request with an optional JSON body and returns the status
// and body.
func HTTP(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

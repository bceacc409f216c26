package deploy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/internal/etcdtest"
	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// clusterZone stands in for the kubernetes plugin: the blue and green
// Services' ClusterIPs.
const clusterZone = `$ORIGIN cluster.local.
$TTL 30
@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30
@ IN NS ns.dns.cluster.local.
ns.dns IN A 10.96.0.10
api-blue.prod.svc IN A 10.96.1.1
api-green.prod.svc IN A 10.96.2.2
`

// local is a Corefile made runnable here.
type local struct {
	corefile string
	dns      string // 127.0.0.1:PORT
	api      string // http://127.0.0.1:PORT
	token    string
	dir      string
}

var (
	serverKey  = regexp.MustCompile(`^(\S+):53\s*\{$`)
	listenerRe = regexp.MustCompile(`^(health|ready|prometheus)(\s+[^{\s]\S*)?(\s*\{)?$`)
	adminRe    = regexp.MustCompile(`^admin\s+\S+$`)
	etcdRe     = regexp.MustCompile(`^store\s+etcd(\s+[^{\s]+)+(\s*\{)?$`)
	kubeRe     = regexp.MustCompile(`^kubernetes\b.*?(\{)?$`)
	forwardRe  = regexp.MustCompile(`^forward\s+\.\s+/etc/resolv\.conf(\s*\{)?$`)
)

// localize writes the pod's files under dir and rewrites the Corefile for
// this machine: the volumes' paths under dir, every listener on a free
// loopback port, etcd endpoints to etcdEndpoint, the kubernetes plugin
// replaced by a file stand-in for cluster.local, and forward sent to a
// closed loopback port. Everything else is left as the manifest has it.
func localize(t *testing.T, c corefileCase, etcdEndpoint func() string) local {
	t.Helper()
	dir := t.TempDir()
	var mounts []string
	for p, content := range c.files {
		host := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			require.NoError(t, os.MkdirAll(host, 0o755))
			mounts = append(mounts, p)
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(host), 0o755))
		require.NoError(t, os.WriteFile(host, []byte(content), 0o644))
		mounts = append(mounts, p)
	}
	l := local{dir: dir}
	dnsPort, adminPort := harness.FreePort(t), harness.FreePort(t)
	l.dns = fmt.Sprintf("127.0.0.1:%d", dnsPort)
	l.api = fmt.Sprintf("http://127.0.0.1:%d", adminPort)

	var out []string
	skipDepth := 0
	for _, line := range strings.Split(c.files[c.conf], "\n") {
		trimmed := strings.TrimSpace(line)
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if skipDepth > 0 {
			skipDepth += strings.Count(trimmed, "{") - strings.Count(trimmed, "}")
			continue
		}
		// Paths inside the pod's volumes.
		fields := strings.Fields(trimmed)
		for i, f := range fields {
			if strings.HasPrefix(f, "/") && f != "/etc/resolv.conf" {
				for _, m := range mounts {
					if f == strings.TrimSuffix(m, "/") || strings.HasPrefix(f, strings.TrimSuffix(m, "/")+"/") {
						fields[i] = filepath.Join(dir, filepath.FromSlash(f))
						break
					}
				}
			}
		}
		trimmed = strings.Join(fields, " ")
		switch {
		case serverKey.MatchString(trimmed):
			out = append(out, indent+serverKey.ReplaceAllString(trimmed, fmt.Sprintf("${1}:%d {", dnsPort)), indent+"    bind 127.0.0.1")
			continue
		case listenerRe.MatchString(trimmed):
			m := listenerRe.FindStringSubmatch(trimmed)
			trimmed = fmt.Sprintf("%s 127.0.0.1:%d%s", m[1], harness.FreePort(t), m[3])
		case adminRe.MatchString(trimmed):
			trimmed = fmt.Sprintf("admin 127.0.0.1:%d", adminPort)
		case etcdRe.MatchString(trimmed):
			m := etcdRe.FindStringSubmatch(trimmed)
			trimmed = "store etcd " + etcdEndpoint() + m[2]
		case kubeRe.MatchString(trimmed):
			zone := filepath.Join(dir, "cluster.local.db")
			require.NoError(t, os.WriteFile(zone, []byte(clusterZone), 0o644))
			trimmed = "file " + zone + " cluster.local"
			if strings.HasSuffix(strings.Fields(line)[len(strings.Fields(line))-1], "{") {
				skipDepth = 1
			}
		case forwardRe.MatchString(trimmed):
			m := forwardRe.FindStringSubmatch(trimmed)
			trimmed = fmt.Sprintf("forward . 127.0.0.1:%d%s", harness.FreePort(t), m[1])
		case strings.HasPrefix(trimmed, "token "):
			b, err := os.ReadFile(fields[1])
			require.NoError(t, err, "the token file")
			l.token = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		}
		out = append(out, indent+trimmed)
	}
	l.corefile = strings.Join(out, "\n")
	require.Contains(t, l.corefile, "admin 127.0.0.1:", "every example sets an admin address")
	return l
}

func (l local) do(t *testing.T, method, path, body string, auth bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, l.api+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, readAll(resp))
	return resp.StatusCode, b.String()
}

func readAll(resp *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// query asks for name/A (as the ECS client subnet when set) and returns the
// answer's CNAME target ("" when none) and A addresses.
func query(t *testing.T, addr, name, subnet string) (string, []string) {
	t.Helper()
	r, err := harness.QueryECS(addr, name, subnet)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s: %s", name, r)
	var cname string
	var as []string
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.CNAME:
			cname = x.Target
		case *dns.A:
			as = append(as, x.A.String())
		}
	}
	return cname, as
}

// eventually retries f for up to d.
func eventually(t *testing.T, d time.Duration, f func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCorefiles starts every Corefile of the manifests with the built binary
// and checks that it answers from the pools and that the API behind the
// token moves the weights.
func TestCorefiles(t *testing.T) {
	cases := corefiles(t)
	require.Len(t, cases, 2, "cluster-dns and authoritative")
	for _, c := range cases {
		t.Run(c.example, func(t *testing.T) {
			var etcd *etcdtest.Server
			l := localize(t, c, func() string {
				if etcd == nil {
					etcd = etcdtest.Start(t)
				}
				return etcd.Endpoint
			})
			t.Logf("Corefile:\n%s", l.corefile)
			p := harness.Start(t, l.dir, l.corefile)
			require.NotEmpty(t, l.token, "the admin API is behind a token")

			switch c.example {
			case "cluster-dns":
				require.NotNil(t, etcd, "cluster DNS keeps the weights in etcd")
				require.Regexp(t, `(?m)^\s*sticky ip\s*$`, l.corefile, "cluster DNS keys on the pod's address")
				p.WaitDNS(l.dns, "api.example.svc", 20*time.Second)
				p.WaitHTTP(l.api+"/healthz", 10*time.Second)
				checkSwitch(t, l, "example.svc", func() string {
					cname, as := query(t, l.dns, "api.example.svc", "")
					switch {
					case cname == "api-blue.prod.svc.cluster.local." && len(as) == 1 && as[0] == "10.96.1.1":
						return "blue"
					case cname == "api-green.prod.svc.cluster.local." && len(as) == 1 && as[0] == "10.96.2.2":
						return "green"
					}
					return fmt.Sprintf("CNAME %q A %v", cname, as)
				})
				// Names of the cluster still resolve through the stand-in.
				_, as := query(t, l.dns, "api-green.prod.svc.cluster.local", "")
				require.Equal(t, []string{"10.96.2.2"}, as)
			case "authoritative":
				p.WaitDNS(l.dns, "www.example.org", 20*time.Second)
				p.WaitHTTP(l.api+"/healthz", 10*time.Second)
				n := 0
				pool := func() string {
					n++
					_, as := query(t, l.dns, "www.example.org", fmt.Sprintf("10.%d.%d.0/24", n>>8&255, n&255))
					if len(as) > 0 && strings.HasPrefix(as[0], "192.0.2.") {
						return "blue"
					}
					if len(as) > 0 && strings.HasPrefix(as[0], "198.51.100.") {
						return "green"
					}
					return fmt.Sprint(as)
				}
				checkSwitch(t, l, "example.org", pool)
				// The weights are on the volume: a restart keeps them.
				p.Kill()
				p.Restart()
				p.WaitDNS(l.dns, "www.example.org", 20*time.Second)
				for i := 0; i < 20; i++ {
					require.Equal(t, "green", pool(), "after a restart, the stored weights (green 1) still apply")
				}
			default:
				t.Fatalf("no checks for example %s: add them", c.example)
			}
		})
	}
}

// checkSwitch: the seed weights send everyone to blue; the API refuses a
// request without the token; with it, blue 0 green 1 sends everyone to
// green.
func checkSwitch(t *testing.T, l local, name string, pool func() string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		require.Equal(t, "blue", pool(), "seed weights blue 100 green 0")
	}
	code, body := l.do(t, "GET", "/v1/switches/"+name, "", false)
	require.Equal(t, http.StatusUnauthorized, code, "without the token: %s", body)
	code, body = l.do(t, "GET", "/v1/switches/"+name, "", true)
	require.Equal(t, http.StatusOK, code, body)
	code, body = l.do(t, "PUT", "/v1/switches/"+name+"/weights", `{"weights":{"blue":0,"green":1},"reason":"deploy test"}`, true)
	require.Equal(t, http.StatusOK, code, body)
	eventually(t, 2*time.Second, func() bool { return pool() == "green" }, "green after blue 0 green 1: got %s", pool())
	for i := 0; i < 20; i++ {
		require.Equal(t, "green", pool())
	}
}

// Package dnssec tests the switch's DNSSEC end to end: the built CoreDNS
// signs a base + two pools layout with a key made by dnssec-keygen, and
// unbound, validating with that key as its trust anchor, must mark every
// pool's answers and denials as authenticated (AD), through a weight
// change and a zone reload.
package dnssec

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluegreen-dns/bluegreen/test/harness"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const baseDB = `$ORIGIN example.org.
$TTL 60
@       IN SOA  ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 30
@       IN NS   ns1.example.org.
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
*.wild  IN TXT  "wildcard"
`

const blueDB = `$ORIGIN example.org.
$TTL 60
www     IN A    192.0.2.1
b-only  IN A    192.0.2.2
`

const greenDB = `$ORIGIN example.org.
$TTL 60
www     IN A    198.51.100.1
g-only  IN A    198.51.100.2
`

// keygen makes a key pair with dnssec-keygen in dir and returns its base
// name; args go before the zone name.
func keygen(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin := harness.NeedTool(t, "dnssec-keygen")
	cmd := exec.Command(bin, append(append([]string{"-q", "-K", dir, "-a", "ECDSAP256SHA256"}, args...), "example.org")...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

type server struct {
	p     *harness.Proc
	dir   string
	dns   string
	admin string
}

func start(t *testing.T) (*server, string) {
	dir := t.TempDir()
	for name, data := range map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	key := keygen(t, dir, "-f", "KSK")
	port, aport := harness.FreePort(t), harness.FreePort(t)
	s := &server{dir: dir, dns: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", aport)}
	s.p = harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        name signed
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 100 green 0
        pin blue 10.1.0.0/16
        pin green 10.2.0.0/16
        reload 100ms
        ttl 2
        dnssec key file %s
        admin 127.0.0.1:%d
    }
}
`, port, key, aport))
	s.p.WaitDNS(s.dns, "www.example.org", 20*time.Second)
	s.p.WaitHTTP("http://"+s.admin+"/healthz", 10*time.Second)
	return s, filepath.Join(dir, key+".key")
}

// startUnbound runs a validating unbound (ECS cache, validator, iterator)
// with example.org stubbed to upstream and the key as trust anchor.
func startUnbound(t *testing.T, upstream, anchor string) string {
	return harness.StartUnbound(t, upstream, fmt.Sprintf(`    module-config: "subnetcache validator iterator"
    val-log-level: 2
    send-client-subnet: 127.0.0.1
    client-subnet-always-forward: yes
    trust-anchor-file: "%s"
`, anchor), func(addr string) bool {
		_, err := resolve(addr, "mail.example.org.", dns.TypeA, "10.9.0.0/24")
		return err == nil
	})
}

// resolve asks the resolver at addr with DO and an ECS option for subnet.
func resolve(addr, qname string, qtype uint16, subnet string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)
	ip, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		return nil, err
	}
	bits, _ := ipnet.Mask.Size()
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(bits), Address: ip.To4()})
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, addr)
	return r, err
}

// validated asks and requires a validated answer (AD) with rcode.
func validated(t *testing.T, addr, qname string, qtype uint16, subnet string, rcode int) *dns.Msg {
	t.Helper()
	r, err := resolve(addr, qname, qtype, subnet)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeToString[rcode], dns.RcodeToString[r.Rcode], "%s %s from %s:\n%s", qname, dns.Type(qtype), subnet, r)
	require.True(t, r.AuthenticatedData, "%s %s from %s not validated (no AD):\n%s", qname, dns.Type(qtype), subnet, r)
	return r
}

func addrOf(r *dns.Msg) string {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

const (
	blueNet  = "10.1.0.0/24"
	greenNet = "10.2.0.0/24"
	freeNet  = "10.3.0.0/24" // not pinned: follows the weights
)

func TestValidatingResolver(t *testing.T) {
	s, anchor := start(t)
	res := startUnbound(t, s.dns, anchor)

	// Both pools' answers validate, and they are each pool's own.
	require.Equal(t, "192.0.2.1", addrOf(validated(t, res, "www.example.org.", dns.TypeA, blueNet, dns.RcodeSuccess)))
	require.Equal(t, "198.51.100.1", addrOf(validated(t, res, "www.example.org.", dns.TypeA, greenNet, dns.RcodeSuccess)))
	validated(t, res, "mail.example.org.", dns.TypeA, greenNet, dns.RcodeSuccess)
	validated(t, res, "x.wild.example.org.", dns.TypeTXT, blueNet, dns.RcodeSuccess)
	validated(t, res, "example.org.", dns.TypeDNSKEY, blueNet, dns.RcodeSuccess)

	// Denials validate in each pool's view: NXDOMAIN (a name no view
	// holds, and a name only the other pool holds) and NODATA.
	for _, net := range []string{blueNet, greenNet} {
		validated(t, res, "nothere.example.org.", dns.TypeA, net, dns.RcodeNameError)
		validated(t, res, "www.example.org.", dns.TypeAAAA, net, dns.RcodeSuccess)
		validated(t, res, "wild.example.org.", dns.TypeA, net, dns.RcodeSuccess) // an empty non-terminal
	}
	validated(t, res, "g-only.example.org.", dns.TypeA, blueNet, dns.RcodeNameError)
	require.Equal(t, "198.51.100.2", addrOf(validated(t, res, "g-only.example.org.", dns.TypeA, greenNet, dns.RcodeSuccess)))
	validated(t, res, "b-only.example.org.", dns.TypeA, greenNet, dns.RcodeNameError)

	// A weight change: the unpinned subnet moves to green, still validated.
	require.Equal(t, "192.0.2.1", addrOf(validated(t, res, "www.example.org.", dns.TypeA, freeNet, dns.RcodeSuccess)))
	code, body := harness.HTTP(t, "PUT", "http://"+s.admin+"/v1/switches/signed/weights", `{"weights":{"blue":0,"green":100},"reason":"dnssec test"}`)
	require.Equal(t, 200, code, body)
	waitAddr(t, res, "www.example.org.", freeNet, "198.51.100.1")

	// A zone reload: green's new name and changed address validate.
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "green.db"), []byte(strings.Replace(greenDB, "198.51.100.1", "198.51.100.9", 1)+"fresh IN A 198.51.100.3\n"), 0o644))
	waitAddr(t, res, "fresh.example.org.", greenNet, "198.51.100.3")
	waitAddr(t, res, "www.example.org.", greenNet, "198.51.100.9")
	validated(t, res, "fresh.example.org.", dns.TypeA, blueNet, dns.RcodeNameError)
	validated(t, res, "nothere.example.org.", dns.TypeA, greenNet, dns.RcodeNameError)
}

// waitAddr asks until the validated answer holds want: after a change the
// resolver may hold the old answer for its TTL (ttl 2 caps it at 2 s).
func waitAddr(t *testing.T, res, qname, subnet, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		r, err := resolve(res, qname, dns.TypeA, subnet)
		require.NoError(t, err)
		if r.Rcode == dns.RcodeSuccess {
			require.True(t, r.AuthenticatedData, "%s from %s not validated:\n%s", qname, subnet, r)
			if got = addrOf(r); got == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s from %s: want %s, last got %q", qname, subnet, want, got)
}

// A key past its Inactive time (dnssec-keygen -I) fails setup, naming it.
func TestExpiredKeyFailsSetup(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"base.db": baseDB, "blue.db": blueDB, "green.db": greenDB} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	key := keygen(t, dir, "-f", "KSK", "-P", "20200101000000", "-A", "20200101000000", "-I", "20200201000000", "-D", "20200301000000")
	port := harness.FreePort(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Corefile"), []byte(fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        dnssec key file %s
        admin off
    }
}
`, port, key)), 0o644))
	cmd := exec.Command(harness.Binary(t), "-conf", filepath.Join(dir, "Corefile"))
	cmd.Dir = dir
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("CoreDNS did not exit with an expired key:\n%s", out)
	}
	require.Error(t, err)
	require.Contains(t, string(out), "dnssec: key "+key)
	require.Contains(t, string(out), "expired")
}

// Without dnssec, pools that are each a complete zone signed beforehand
// (dnssec-signzone, same key) are served as they are and validate: the
// layout the README names for pre-signed data.
func TestPresignedCompletePools(t *testing.T) {
	signzone := harness.NeedTool(t, "dnssec-signzone")
	dir := t.TempDir()
	key := keygen(t, dir, "-f", "KSK")
	apex := "$ORIGIN example.org.\n$TTL 60\n@ IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 30\n@ IN NS ns1.example.org.\nns1 IN A 127.0.0.1\nmail IN A 192.0.2.25\n"
	for pool, data := range map[string]string{"blue": apex + "www IN A 192.0.2.1\n", "green": apex + "www IN A 198.51.100.1\ng-only IN A 198.51.100.2\n"} {
		full := filepath.Join(dir, pool+".full")
		require.NoError(t, os.WriteFile(full, []byte(data), 0o644))
		out, err := exec.Command(signzone, "-q", "-z", "-S", "-K", dir, "-d", dir, "-o", "example.org", "-f", filepath.Join(dir, pool+".db"), full).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	port, aport := harness.FreePort(t), harness.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := harness.Start(t, dir, fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    bluegreen {
        pool blue blue.db
        pool green green.db
        pin blue 10.1.0.0/16
        pin green 10.2.0.0/16
        admin 127.0.0.1:%d
    }
}
`, port, aport))
	p.WaitDNS(addr, "www.example.org", 20*time.Second)
	res := startUnbound(t, addr, filepath.Join(dir, key+".key"))

	require.Equal(t, "192.0.2.1", addrOf(validated(t, res, "www.example.org.", dns.TypeA, blueNet, dns.RcodeSuccess)))
	require.Equal(t, "198.51.100.1", addrOf(validated(t, res, "www.example.org.", dns.TypeA, greenNet, dns.RcodeSuccess)))
	validated(t, res, "g-only.example.org.", dns.TypeA, blueNet, dns.RcodeNameError)
	validated(t, res, "nothere.example.org.", dns.TypeA, greenNet, dns.RcodeNameError)
	validated(t, res, "www.example.org.", dns.TypeAAAA, blueNet, dns.RcodeSuccess)
}

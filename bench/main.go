// Command bench compares, in one run, the project's CoreDNS build serving
// a bluegreen switch (90/10) with the same build serving the same records
// through the file plugin, and with whoami as the server's own ceiling.
// The DO rows ask the same questions (and some NXDOMAIN ones) with the DO
// bit of a switch that signs its views (dnssec key file) and of the file
// plugin serving the same records signed by dnssec-signzone with the same
// key. For the query runs each server runs with GOMAXPROCS=1 pinned to one
// core, dnsperf pinned to another; the rounds alternate the order of the
// servers. It then measures the load time and memory (VmRSS) of each at
// -names names per pool, and with large bases (-base-names) and pools of
// one name, each server started as it would be (every CPU, unpinned).
//
//	go run ./bench -bin bin/coredns
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
	"github.com/miekg/dns"
)

var (
	bin      = flag.String("bin", "bin/coredns", "the CoreDNS binary")
	rounds   = flag.Int("rounds", 3, "alternating rounds")
	duration = flag.Duration("duration", 10*time.Second, "dnsperf run per server and round")
	latency  = flag.Duration("latency", 3*time.Second, "dnsperf -v run per server and round, for p99")
	queries  = flag.Int("q", 100, "dnsperf -q (outstanding queries)")
	server   = flag.String("server-cpu", "0", "CPU the server is pinned to")
	client   = flag.String("client-cpu", "1", "CPU dnsperf is pinned to")
	names    = flag.Int("names", 100000, "names per pool for the load and memory test")
	large    = flag.String("base-names", "300000,1000000", "names in base for the shared-base load and memory test (2 and 3 one-name pools), comma-separated sizes")
	onlyBase = flag.Bool("only-base", false, "run only the shared-base load and memory test")
	only     = flag.String("only", "", "run only the query rounds of these servers, comma-separated (e.g. \"bluegreen DO,file DO\"); no load tests")
)

const baseDB = `$ORIGIN example.org.
$TTL 300
@    IN SOA ns1.example.org. hostmaster.example.org. 2026112201 7200 3600 1209600 60
@    IN NS  ns1.example.org.
ns1  IN A   127.0.0.1
mail IN A   192.0.2.25
`

func poolDB(octet, v6 string, n int) string {
	var b strings.Builder
	b.WriteString("$ORIGIN example.org.\n$TTL 300\n")
	fmt.Fprintf(&b, "www IN A %s.10\nwww IN A %s.11\nwww IN AAAA %s\napi IN CNAME www.example.org.\n", octet, octet, v6)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "h%d IN A %s.%d\n", i, octet, i%250+1)
	}
	return b.String()
}

type target struct {
	name     string
	corefile string // %d is the port
	do       bool   // asked with the DO bit, checked to answer signed
}

// targets are the servers of the query runs; key is the dnssec-keygen base
// name the DO targets sign with (the file target serves file-signed.db,
// which signZones made with it).
func targets(key string) []target {
	sw := `example.org:%d {
    bind 127.0.0.1
    bluegreen {
        base base.db
        pool blue blue.db
        pool green green.db
        weights blue 90 green 10
        admin off
        reload 0
`
	return []target{
		{"bluegreen", sw + "    }\n}\n", false},
		{"file", `example.org:%d {
    bind 127.0.0.1
    file file.db
}
`, false},
		{"whoami", `.:%d {
    bind 127.0.0.1
    whoami
}
`, false},
		{"bluegreen DO", sw + "        dnssec key file " + key + "\n    }\n}\n", true},
		{"file DO", `example.org:%d {
    bind 127.0.0.1
    file file-signed.db
}
`, true},
		// Under a plugin that wraps the writer and needs the reply as a
		// message (log; it logs only errors, which this mix has none
		// of), the switch hands its answers over as messages: the
		// message path, next to file under the same plugin.
		{"bluegreen DO (log)", strings.Replace(sw, "    bluegreen {", "    log . {\n        class error\n    }\n    bluegreen {", 1) + "        dnssec key file " + key + "\n    }\n}\n", true},
		{"file DO (log)", `example.org:%d {
    bind 127.0.0.1
    log . {
        class error
    }
    file file-signed.db
}
`, true},
	}
}

func main() {
	flag.Parse()
	log := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	tools := []string{"dnsperf", "taskset"}
	if !*onlyBase {
		tools = append(tools, "dnssec-keygen", "dnssec-signzone")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			hint := ""
			if strings.HasPrefix(tool, "dnssec-") {
				hint = " (Debian: apt-get install bind9-utils)"
			}
			log("bench: %s not found%s", tool, hint)
			os.Exit(1)
		}
	}
	binary, err := filepath.Abs(*bin)
	check(err)
	sizes, err := baseSizes(*large)
	check(err)
	dir, err := os.MkdirTemp("", "bluegreen-bench")
	check(err)
	defer os.RemoveAll(dir)

	if *onlyBase {
		largeBase(binary, dir, sizes, log)
		return
	}

	// Small zones for the query runs, and the key both DO targets sign with.
	writeZones(dir, 0)
	key := newKey(dir)
	signZones(dir, key)
	qfile := map[bool]string{false: filepath.Join(dir, "queries.bin"), true: filepath.Join(dir, "queries-do.bin")}
	check(os.WriteFile(qfile[false], queryMix(10000, false), 0o644))
	check(os.WriteFile(qfile[true], queryMix(10000, true), 0o644))

	chosen, err := pick(targets(key), *only)
	check(err)
	res := map[string][]run{}
	for r := 0; r < *rounds; r++ {
		ts := chosen
		// Alternate the order: rotate by the round.
		ts = append(ts[r%len(ts):], ts[:r%len(ts)]...)
		for _, t := range ts {
			out, err := measure(binary, dir, t, qfile[t.do])
			if err != nil {
				log("bench: %s round %d: %v", t.name, r+1, err)
				os.Exit(1)
			}
			log("round %d %-12s %8.0f qps  avg %.3f ms  p99 %.3f ms  lost %d  %s", r+1, t.name, out.qps, out.avg*1e3, out.p99*1e3, out.lost, out.rcodes)
			res[t.name] = append(res[t.name], out)
		}
	}

	// Load time and memory at -names names per pool (the DO targets sign
	// them: the switch at load, dnssec-signzone before the file plugin's);
	// not with -only, which runs the query rounds alone.
	mem := map[string][2]float64{}
	if *only == "" {
		loadAll(binary, dir, key, mem, log)
	}

	med := func(name string, f func(run) float64) float64 {
		var xs []float64
		for _, r := range res[name] {
			xs = append(xs, f(r))
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	qps := func(r run) float64 { return r.qps }
	fmt.Printf("\nMedians of %d alternating rounds of %s, dnsperf -q %d, GOMAXPROCS=1, server on CPU %s, dnsperf on CPU %s;\n", *rounds, *duration, *queries, *server, *client)
	fmt.Printf("DO rows: the same questions plus 20%% NXDOMAIN, all with DO, on data signed with one ECDSAP256SHA256 key\n")
	fmt.Printf("(bluegreen DO signs its views at load; file DO serves the records signed by dnssec-signzone;\n")
	fmt.Printf("\"(log)\": under the log plugin, which logs only errors but takes the replies as messages);\n")
	fmt.Printf("load (unpinned, every CPU) and VmRSS at %d names per pool (the file server holds base + blue).\n\n", *names)
	fmt.Printf("| server | queries/s | avg latency | p99 latency | load time | VmRSS |\n|---|---:|---:|---:|---:|---:|\n")
	for _, t := range chosen {
		load, rss := "-", "-"
		if m, ok := mem[t.name]; ok {
			load, rss = fmt.Sprintf("%.2f s", m[0]), fmt.Sprintf("%.1f MiB", m[1])
		}
		fmt.Printf("| %s | %.0f | %.3f ms | %.3f ms | %s | %s |\n", t.name, med(t.name, qps),
			med(t.name, func(r run) float64 { return r.avg * 1e3 }), med(t.name, func(r run) float64 { return r.p99 * 1e3 }),
			load, rss)
	}
	for _, pair := range [][2]string{{"bluegreen", "file"}, {"bluegreen", "whoami"}, {"bluegreen DO", "file DO"}, {"bluegreen DO (log)", "file DO (log)"}} {
		if res[pair[0]] == nil || res[pair[1]] == nil {
			continue
		}
		med, rounds := perRound(res, pair[0], pair[1])
		fmt.Printf("\n%-22s %.2fx queries/s (median of the rounds' ratios; per round:%s)", pair[0]+" / "+pair[1]+":", med, rounds)
	}
	fmt.Println()
	if *only == "" {
		largeBase(binary, dir, sizes, log)
	}
}

// pick returns the targets -only names, in their usual order, or all of
// them when it is empty.
func pick(ts []target, only string) ([]target, error) {
	if only == "" {
		return ts, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []target
	for _, t := range ts {
		if want[t.name] {
			out = append(out, t)
			delete(want, t.name)
		}
	}
	if len(want) > 0 {
		var names []string
		for _, t := range ts {
			names = append(names, t.name)
		}
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("-only: no server named %q; the servers are %q", unknown, names)
	}
	return out, nil
}

// loadAll measures, for every target, the load time and VmRSS at -names
// names per pool, into mem.
func loadAll(binary, dir, key string, mem map[string][2]float64, log func(string, ...any)) {
	big := filepath.Join(dir, "big")
	check(os.MkdirAll(big, 0o755))
	writeZones(big, *names)
	for _, ext := range []string{".key", ".private"} {
		data, err := os.ReadFile(filepath.Join(dir, key+ext))
		check(err)
		check(os.WriteFile(filepath.Join(big, key+ext), data, 0o600))
	}
	signZones(big, key)
	for _, t := range targets(key) {
		if strings.HasSuffix(t.name, " (log)") {
			continue // loads as without log
		}
		load, rss, err := loadAndRSS(binary, big, t)
		if err != nil {
			log("bench: %s load: %v", t.name, err)
			os.Exit(1)
		}
		log("load     %-12s %.2f s  VmRSS %.1f MiB", t.name, load.Seconds(), rss)
		mem[t.name] = [2]float64{load.Seconds(), rss}
	}
}

// baseSizes parses -base-names.
func baseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-base-names: %q is not a count of names", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// newKey makes a CSK for example.org (a KSK that signs everything, one
// key as the dnssec plugin's users have) in dir and returns its base name.
func newKey(dir string) string {
	out, err := exec.Command("dnssec-keygen", "-q", "-K", dir, "-a", "ECDSAP256SHA256", "-f", "KSK", "-n", "ZONE", "example.org").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: dnssec-keygen: %v\n%s", err, out)
		os.Exit(1)
	}
	key := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, key+".private")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: dnssec-keygen printed %q, not a key in %s: %v\n", key, dir, err)
		os.Exit(1)
	}
	return key
}

// signZones signs dir/file.db (base + blue, what the file target serves)
// with key into dir/file-signed.db: NSEC, the DNSKEY added from the key
// (-S), and the KSK signing every RRset (-z), as the switch does; its
// dsset file goes to dir too (-d).
func signZones(dir, key string) {
	cmd := exec.Command("dnssec-signzone", "-q", "-S", "-z", "-K", dir, "-d", dir, "-o", "example.org", "-f", filepath.Join(dir, "file-signed.db"), filepath.Join(dir, "file.db"))
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: dnssec-signzone: %v\n%s", err, out)
		os.Exit(1)
	}
	data, err := os.ReadFile(filepath.Join(dir, "file-signed.db"))
	check(err)
	if !bytes.Contains(data, []byte("RRSIG")) || !bytes.Contains(data, []byte("NSEC")) || !bytes.Contains(data, []byte("DNSKEY")) {
		fmt.Fprintf(os.Stderr, "bench: dnssec-signzone with %s made %s without RRSIG, NSEC and DNSKEY records\n", key, filepath.Join(dir, "file-signed.db"))
		os.Exit(1)
	}
}

// largeBase measures load time and VmRSS with a large base and pools of
// one name each, next to the file plugin serving base and one pool's name:
// the views share the base, so pools should cost little. It runs once per
// base size; issue 16 wants 1,000,000 names with 3 pools loaded in under 5 s.
func largeBase(binary, dir string, sizes []int, log func(string, ...any)) {
	type result struct {
		size      int
		name      string
		load, rss float64
		ratio     string
	}
	var rs []result
	for _, size := range sizes {
		big := filepath.Join(dir, fmt.Sprintf("large-%d", size))
		check(os.MkdirAll(big, 0o755))
		var b strings.Builder
		b.WriteString(baseDB)
		for i := 0; i < size; i++ {
			fmt.Fprintf(&b, "h%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
		}
		base := b.String()
		check(os.WriteFile(filepath.Join(big, "base.db"), []byte(base), 0o644))
		pools := []string{"blue", "green", "red"}
		for i, p := range pools {
			check(os.WriteFile(filepath.Join(big, p+".db"), []byte(fmt.Sprintf("$ORIGIN example.org.\n$TTL 300\nwww IN A 192.0.2.%d\n", i+1)), 0o644))
		}
		check(os.WriteFile(filepath.Join(big, "file.db"), []byte(base+"www IN A 192.0.2.1\n"), 0o644))
		ts := []target{{"file", `example.org:%d {
    bind 127.0.0.1
    file file.db
}
`, false}}
		for n := 2; n <= len(pools); n++ { // a switch has two pools at least
			conf := "example.org:%d {\n    bind 127.0.0.1\n    bluegreen {\n        base base.db\n        admin off\n        reload 0\n"
			for _, p := range pools[:n] {
				conf += "        pool " + p + " " + p + ".db\n"
			}
			ts = append(ts, target{fmt.Sprintf("bluegreen-%d", n), conf + "    }\n}\n", false})
		}
		var file result
		for _, t := range ts {
			load, rss, err := loadAndRSS(binary, big, t)
			if err != nil {
				log("bench: %s load at %d base names: %v", t.name, size, err)
				os.Exit(1)
			}
			log("load     %-12s %7d base names  %.2f s  VmRSS %.1f MiB", t.name, size, load.Seconds(), rss)
			r := result{size: size, name: t.name, load: load.Seconds(), rss: rss}
			if t.name == "file" {
				file = r
			}
			r.ratio = fmt.Sprintf("%.2fx load, %.2fx RSS", r.load/file.load, r.rss/file.rss)
			rs = append(rs, r)
		}
		check(os.RemoveAll(big))
	}
	fmt.Printf("\nShared base: pools of one name (file serves base + www); load is the time from start to the first answer\n")
	fmt.Printf("(unpinned, every CPU, as a server starts), VmRSS a second later. Target (issue 16): 1,000,000 names, 3 pools, under 5 s.\n\n")
	fmt.Printf("| base names | server | load to first answer | VmRSS | vs file |\n|---:|---|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Printf("| %d | %s | %.2f s | %.0f MiB | %s |\n", r.size, r.name, r.load, r.rss, r.ratio)
	}
}

// perRound returns the median of a's queries/s over b's, each round's runs
// paired (adjacent in time, so they share the machine's conditions), and
// the ratios.
func perRound(res map[string][]run, a, b string) (float64, string) {
	var s string
	var xs []float64
	for i := range res[a] {
		x := res[a][i].qps / res[b][i].qps
		xs = append(xs, x)
		s += fmt.Sprintf(" %.2f", x)
	}
	slices.Sort(xs)
	return xs[len(xs)/2], s
}

func writeZones(dir string, n int) {
	check(os.WriteFile(filepath.Join(dir, "base.db"), []byte(baseDB), 0o644))
	blue := poolDB("192.0.2", "2001:db8::10", n)
	check(os.WriteFile(filepath.Join(dir, "blue.db"), []byte(blue), 0o644))
	check(os.WriteFile(filepath.Join(dir, "green.db"), []byte(poolDB("198.51.100", "2001:db8::20", n)), 0o644))
	// The file plugin serves base and blue, what 90 % of clients get.
	file := baseDB + strings.TrimPrefix(blue, "$ORIGIN example.org.\n$TTL 300\n")
	check(os.WriteFile(filepath.Join(dir, "file.db"), []byte(file), 0o644))
}

// queryMix returns n queries in dnsperf's binary (-B) format: half carry
// ECS for one of 4096 /24 subnets, half are plain; names switched (www,
// api) and base (mail). With do, every query carries EDNS0 with the DO bit
// and every fifth asks for a missing name (NXDOMAIN, an NSEC proof: after
// ns1, a base name, or after api, a pool name, by turns); the plain mix is
// unchanged, so figures stay comparable with earlier runs.
func queryMix(n int, do bool) []byte {
	qs := []struct {
		name  string
		qtype uint16
	}{{"www.example.org.", dns.TypeA}, {"www.example.org.", dns.TypeAAAA}, {"api.example.org.", dns.TypeA}, {"mail.example.org.", dns.TypeA}}
	if do {
		qs = append(qs, struct {
			name  string
			qtype uint16
		}{"", dns.TypeA})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	nx := rand.New(rand.NewPCG(3, 4))
	var out bytes.Buffer
	for i := 0; i < n; i++ {
		q := qs[i%len(qs)]
		if q.name == "" {
			q.name = fmt.Sprintf("%s-%d.example.org.", []string{"nx", "b"}[i/len(qs)%2], nx.IntN(4096))
		}
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.RecursionDesired = false
		if do {
			m.SetEdns0(1232, true)
		}
		if i%2 == 0 {
			if !do {
				m.SetEdns0(1232, false)
			}
			s := rng.IntN(4096)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
				Address: net.IPv4(10, byte(s>>8), byte(s), 0).To4()}}
		}
		buf, err := m.Pack()
		check(err)
		binary.Write(&out, binary.BigEndian, uint16(len(buf)))
		out.Write(buf)
	}
	return out.Bytes()
}

type run struct {
	qps, avg, p99 float64
	lost          int
	rcodes        string
}

var (
	reQPS    = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reAvg    = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	reLost   = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reRcodes = regexp.MustCompile(`Response codes:\s+(.*)`)
)

// measure starts the server for t, runs dnsperf against it for -duration
// (queries/s, average latency) and -latency with -v (p99), and stops it.
func measure(binary, dir string, t target, qfile string) (run, error) {
	var r run
	p, port, err := start(binary, dir, t, true)
	if err != nil {
		return r, err
	}
	defer stop(p)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := waitAnswer(p, addr, 10*time.Second); err != nil {
		return r, err
	}
	if t.do {
		if err := checkSigned(addr); err != nil {
			return r, fmt.Errorf("not measured, the server does not answer DO queries signed: %v", err)
		}
	}
	args := []string{"-c", *client, "dnsperf", "-B", "-d", qfile, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-q", strconv.Itoa(*queries)}
	out, err := exec.Command("taskset", append(args, "-l", secs(*duration))...).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("dnsperf: %v\n%s", err, out)
	}
	r.qps = parseFloat(reQPS, out)
	r.avg = parseFloat(reAvg, out)
	r.lost = int(parseFloat(reLost, out))
	if m := reRcodes.FindSubmatch(out); m != nil {
		r.rcodes = string(m[1])
	}
	out, err = exec.Command("taskset", append(args, "-l", secs(*latency), "-v")...).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("dnsperf -v: %v", err)
	}
	var lat []float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == ">" {
			if x, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, x)
			}
		}
	}
	if len(lat) == 0 {
		return r, errors.New("dnsperf -v reported no latencies")
	}
	slices.Sort(lat)
	r.p99 = lat[len(lat)*99/100]
	return r, nil
}

// checkSigned asks addr with DO for www.example.org/A and for a missing
// name, and fails unless the answer carries the A RRset's RRSIG and the
// NXDOMAIN an NSEC with its RRSIG and the SOA's RRSIG.
func checkSigned(addr string) error {
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, true)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return nil, fmt.Errorf("%s/A with DO: %v", name, err)
		}
		return r, nil
	}
	covers := func(rrs []dns.RR, t uint16) bool {
		for _, rr := range rrs {
			if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == t {
				return true
			}
		}
		return false
	}
	r, err := ask("www.example.org.")
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !covers(r.Answer, dns.TypeA) {
		return fmt.Errorf("www.example.org./A with DO: %s with no RRSIG over the A records:\n%v", dns.RcodeToString[r.Rcode], r)
	}
	r, err = ask("nx-check.example.org.")
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeNameError || !covers(r.Ns, dns.TypeNSEC) || !covers(r.Ns, dns.TypeSOA) {
		return fmt.Errorf("nx-check.example.org./A with DO: %s without a signed NSEC proof and SOA:\n%v", dns.RcodeToString[r.Rcode], r)
	}
	return nil
}

// loadAndRSS starts the server for t and returns the time until its first
// answer and its VmRSS a second later, in MiB.
func loadAndRSS(binary, dir string, t target) (time.Duration, float64, error) {
	p, port, err := start(binary, dir, t, false)
	if err != nil {
		return 0, 0, err
	}
	defer stop(p)
	load, err := waitAnswer(p, "127.0.0.1:"+strconv.Itoa(port), 120*time.Second)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		return 0, 0, errors.New("no VmRSS")
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return load, kb / 1024, nil
}

var started = map[*exec.Cmd]time.Time{}

// start runs the server for t: pinned to -server-cpu with GOMAXPROCS=1
// for the query runs, or on every CPU (as a server starts) for load times.
func start(binary, dir string, t target, pinned bool) (*exec.Cmd, int, error) {
	port := freePort()
	conf := filepath.Join(dir, "Corefile."+t.name)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(t.corefile, port)), 0o644); err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(binary, "-conf", conf)
	if pinned {
		cmd = exec.Command("taskset", "-c", *server, binary, "-conf", conf)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started[cmd] = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	return cmd, port, nil
}

func stop(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
}

// waitAnswer waits for an answer to www.example.org/A and returns the time
// since the process started.
func waitAnswer(cmd *exec.Cmd, addr string, timeout time.Duration) (time.Duration, error) {
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r, _, err := c.Exchange(m, addr); err == nil && r != nil {
			return time.Since(started[cmd]), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no answer on %s within %s", addr, timeout)
}

func freePort() int {
	port, err := freeport.Port()
	check(err)
	return port
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func parseFloat(re *regexp.Regexp, out []byte) float64 {
	m := re.FindSubmatch(out)
	if m == nil {
		return 0
	}
	x, _ := strconv.ParseFloat(string(m[1]), 64)
	return x
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

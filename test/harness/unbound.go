package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartUnbound runs unbound on loopback with example.org stubbed to
// upstream (the server under test) and returns its address once ready
// reports that it answers; it is killed at the end of the test, and its
// log printed if the test failed. server holds the test's own lines for
// unbound's server: clause (module-config, caching, validation), each
// indented by four spaces.
func StartUnbound(t *testing.T, upstream, server string, ready func(addr string) bool) string {
	t.Helper()
	bin := NeedTool(t, "unbound")
	dir := t.TempDir()
	port := FreePort(t)
	host, uport, _ := net.SplitHostPort(upstream)
	conf := fmt.Sprintf(`server:
    interface: 127.0.0.1
    port: %d
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "%s"
    pidfile: "%s/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    prefetch: no
    qname-minimisation: no
    harden-referral-path: no
    num-threads: 1
%sstub-zone:
    name: "example.org"
    stub-addr: %s@%s
`, port, dir, dir, server, host, uport)
	cf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "unbound.log")
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", cf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("unbound log:\n%s", b)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ready(addr) {
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("unbound did not answer on %s\n%s", addr, b)
	return ""
}

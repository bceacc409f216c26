// Package etcdtest starts a real etcd server (Debian's etcd-server package,
// the `etcd` binary) on loopback ports with a temporary data directory, for
// tests. Without the binary the test is skipped, or fails under CI=true.
package etcdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bluegreen-dns/bluegreen/internal/freeport"
)

// Server is a running etcd.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT (https:// with TLS)
	// TLS files, set by StartTLS: the CA and a client certificate and key
	// it signed. The server requires client certificates.
	CA, Cert, Key string
	dir           string
	client        string
	peer          string
	cmd           *exec.Cmd
	t             testing.TB
	log           *os.File
	exited        chan struct{} // closed when the etcd process has exited
}

// Start starts etcd and waits until it answers; it is stopped at the end of
// the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, lookEtcd(t), false)
}

// StartTLS is Start with client TLS: the server presents a certificate for
// 127.0.0.1 and requires a client certificate, both signed by s.CA.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, lookEtcd(t), true)
}

// lookEtcd returns the etcd binary; without it the test is skipped, or
// fails under CI=true.
func lookEtcd(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd not found (CI=true: install Debian's etcd-server): %v", err)
		}
		t.Skipf("etcd not found; install Debian's etcd-server to run this test: %v", err)
	}
	return bin
}

func start(t testing.TB, bin string, withTLS bool) *Server {
	t.Helper()
	var err error
	// A port can still be taken by a process that does not use freeport;
	// then etcd exits at once and the next attempt takes other ports.
	for attempt := 1; attempt <= 3; attempt++ {
		s := &Server{dir: t.TempDir(), t: t, client: freeport.Addr(t), peer: freeport.Addr(t)}
		s.Endpoint = "http://" + s.client
		if withTLS {
			if err := s.makeCerts(); err != nil {
				t.Fatal(err)
			}
			s.Endpoint = "https://" + s.client
		}
		if err = s.start(bin); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
		t.Logf("etcd start, attempt %d: %v", attempt, err)
	}
	t.Fatal(err)
	return nil
}

func (s *Server) start(bin string) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.log = logf
	args := []string{
		"--name", "test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", "http://" + s.peer,
		"--initial-advertise-peer-urls", "http://" + s.peer,
		"--initial-cluster", "test=http://" + s.peer,
		"--log-level", "error",
	}
	if s.CA != "" {
		args = append(args, "--cert-file", filepath.Join(s.dir, "server.pem"), "--key-file", filepath.Join(s.dir, "server-key.pem"),
			"--trusted-ca-file", s.CA, "--client-cert-auth")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+goarch())
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	return s.wait(20 * time.Second)
}

func (s *Server) wait(d time.Duration) error {
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()}
	if s.CA != "" {
		tc, err := s.clientTLS()
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(filepath.Join(s.dir, "etcd.log"))
			return fmt.Errorf("etcd exited before answering:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "etcd.log"))
	return fmt.Errorf("etcd did not answer within %s: %v\n%s", d, err, b)
}

// Stop kills etcd; its data stays for Restart.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
	if s.log != nil {
		s.log.Close()
	}
}

// Pause freezes etcd (SIGSTOP): its sockets stay open and requests hang,
// as with a stalled disk or a partition, rather than fail at once. kill
// returns before a thread running on another CPU has stopped, so Pause
// waits until every thread of etcd is stopped (state T in /proc).
func (s *Server) Pause() {
	s.t.Helper()
	pid := s.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGSTOP)
	deadline := time.Now().Add(10 * time.Second)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd (pid %d) did not stop within 10s of SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// stopped reports whether every thread of process pid is stopped.
func stopped(pid int) bool {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		// pid (comm) STATE ...: comm may hold spaces, so look after the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume lets a paused etcd go on (SIGCONT).
func (s *Server) Resume() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT) }

// Restart starts etcd again on the same ports with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	bin, _ := exec.LookPath("etcd")
	if err := s.start(bin); err != nil {
		s.t.Fatal(err)
	}
}

// Client returns a client for the server, closed at the end of the test.
func (s *Server) Client() *clientv3.Client {
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if s.CA != "" {
		tc, err := s.clientTLS()
		if err != nil {
			s.t.Fatal(err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cli.Close() })
	return cli
}

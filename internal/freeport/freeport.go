// Package freeport hands out loopback ports for tests and the benchmark.
//
// Asking the kernel for port 0 and closing the socket again, the usual
// trick, races twice when several test binaries run at once (go test runs
// packages in parallel): another binary can be handed the same port, and
// any outgoing connection can take it as its ephemeral source port before
// the server binds it. The CI run lost an etcd start to exactly that
// ("bind: address already in use"). So ports here come from below the
// kernel's ephemeral range, where no outgoing connection lands, and each is
// reserved for the life of the process with flock(2) on a file in the
// temporary directory, which every other process using this package
// respects and which the kernel releases when the process exits, however it
// exits.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lowest is the bottom of the range ports are drawn from; the top is the
// start of the kernel's ephemeral range.
const lowest = 20000

var (
	mu   sync.Mutex
	held []*os.File // the lock files, open (and locked) until the process exits
)

// Port returns a port free for both TCP and UDP on 127.0.0.1, reserved
// against every other caller of Port on this machine while this process
// lives.
func Port() (int, error) {
	dir := filepath.Join(os.TempDir(), "bluegreen-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	top := ephemeralStart()
	for range 200 {
		port := lowest + rand.IntN(top-lowest)
		f, ok := reserve(dir, port)
		if !ok {
			continue
		}
		if bindable(port) {
			mu.Lock()
			held = append(held, f)
			mu.Unlock()
			return port, nil
		}
		f.Close() // releases the lock
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d after 200 tries", lowest, top-1)
}

// T is Port for tests: it fails the test when no port is free.
func T(t testing.TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Addr is T as "127.0.0.1:PORT".
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(T(t))
}

// reserve takes the lock for port; false when another process (or this
// one, through an earlier call) holds it.
func reserve(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

func bindable(port int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (32768 on Linux by default).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				return n
			}
		}
	}
	return 32768
}

package main

import (
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

// Loopback ports for the end-to-end test, reserved the way the main
// module's internal/freeport does (this module does not import it): below
// the kernel's ephemeral range, each held with flock(2) on a file in
// $TMPDIR/bluegreen-ports that every test binary of the repository
// respects, until this process exits.
var (
	portMu   sync.Mutex
	portHeld []*os.File
)

func freePort(t *testing.T) int {
	t.Helper()
	const lowest = 20000
	dir := filepath.Join(os.TempDir(), "bluegreen-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	top := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				top = n
			}
		}
	}
	for range 200 {
		port := lowest + rand.IntN(top-lowest)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		if bindable(port) {
			portMu.Lock()
			portHeld = append(portHeld, f)
			portMu.Unlock()
			return port
		}
		f.Close()
	}
	t.Fatalf("no free loopback port in %d-%d after 200 tries", lowest, top-1)
	return 0
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

package freeport

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Ports handed out are distinct, bindable, and below the ephemeral range.
func TestPortDistinctAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := T(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < lowest || p >= ephemeralStart() {
			t.Fatalf("port %d outside %d-%d", p, lowest, ephemeralStart()-1)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		l.Close()
	}
}

// A port this process holds cannot be reserved by another process.
func TestReservationExcludesOtherProcesses(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") != "" {
		p, _ := strconv.Atoi(os.Getenv("FREEPORT_CHILD"))
		if _, ok := reserve(filepath.Join(os.TempDir(), "bluegreen-ports"), p); ok {
			os.Exit(3)
		}
		os.Exit(0)
	}
	p := T(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestReservationExcludesOtherProcesses$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD="+strconv.Itoa(p))
	if err := cmd.Run(); err != nil {
		t.Fatalf("another process could reserve port %d, which this one holds: %v", p, err)
	}
}

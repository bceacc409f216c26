// Package image tests what ships: the version the Makefile stamps into
// bin/coredns, and the Dockerfile's build (run without a Docker engine).
package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

var (
	makeOnce sync.Once
	makeBin  string
	makeOut  string
	makeErr  error
	// makeVer is git describe just before and just after make build: the
	// version the binary must carry, when the two agree.
	makeVer [2]string
)

// makeBinary builds cmd/coredns with the Makefile's own coredns target (and so
// its ldflags) into a temporary path, once per test process.
func makeBinary(t *testing.T) string {
	t.Helper()
	harness.NeedTool(t, "make")
	makeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bluegreen-make")
		if err != nil {
			makeErr = err
			return
		}
		makeBin = filepath.Join(dir, "coredns")
		cmd := niced("make", "-s", "coredns", "BIN="+makeBin)
		cmd.Dir = harness.Root()
		makeVer[0] = describe(t)
		out, err := cmd.CombinedOutput()
		makeVer[1] = describe(t)
		makeOut, makeErr = string(out), err
	})
	require.NoError(t, makeErr, "make build:\n%s", makeOut)
	return makeBin
}

// niced returns a command run at the lowest CPU priority (when nice
// exists): builds here must not starve the timing-sensitive tests of
// packages running alongside.
func niced(name string, args ...string) *exec.Cmd {
	if nice, err := exec.LookPath("nice"); err == nil {
		return exec.Command(nice, append([]string{"-n", "19", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// git runs git in the repository and returns its trimmed output, or "" when
// it fails (as the Makefile's $(shell ...) would).
func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = harness.Root()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// stableVersion returns the version make build stamped, skipping the test
// when the checkout changed while it built (other work in a shared tree; a
// CI clone does not change).
func stableVersion(t *testing.T) string {
	t.Helper()
	if makeVer[0] != makeVer[1] {
		t.Skipf("the checkout changed while make build ran (%s, then %s); run again", makeVer[0], makeVer[1])
	}
	return makeVer[0]
}

// describe is the bluegreen version the Makefile stamps: git describe, else
// "dev".
func describe(t *testing.T) string {
	if v := git(t, "describe", "--tags", "--always", "--dirty"); v != "" {
		return v
	}
	return "dev"
}

// version runs bin -version and returns its output.
func version(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "-version").CombinedOutput()
	require.NoError(t, err, "%s -version: %s", bin, out)
	return string(out)
}

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
)

// makeBinary builds cmd/coredns with the Makefile's own build target (and so
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
		cmd := exec.Command("make", "-s", "build", "BIN="+makeBin)
		cmd.Dir = harness.Root()
		out, err := cmd.CombinedOutput()
		makeOut, makeErr = string(out), err
	})
	require.NoError(t, makeErr, "make build:\n%s", makeOut)
	return makeBin
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

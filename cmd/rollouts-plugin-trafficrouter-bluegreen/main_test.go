package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// -install copies the binary itself (the init container's job, on an
// image without a shell); other arguments are a usage error; without any,
// outside Argo's handshake, the binary refuses to serve.
func TestInstallAndUsage(t *testing.T) {
	bin := pluginBinary(t)
	dir := t.TempDir()
	out, err := runCmd(bin, "-install", dir)
	require.NoError(t, err, "%s", out)
	dst := filepath.Join(dir, "rollouts-plugin-trafficrouter-bluegreen")
	require.Contains(t, string(out), "installed "+dst)
	want, err := os.ReadFile(bin)
	require.NoError(t, err)
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "the installed file is the binary")
	st, err := os.Stat(dst)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	_, err = runCmd(bin, "-install", filepath.Join(dir, "absent"))
	require.Error(t, err)

	out, err = runCmd(bin, "-frobnicate")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, string(out), "usage:")

	out, err = runCmd(bin)
	require.Error(t, err)
	require.Contains(t, string(out), "This binary is a plugin")
}

package image

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// TestVersion: the Makefile's binary names CoreDNS 1.15.0 and the bluegreen
// version from git describe (and the commit, as CoreDNS's own builds do).
func TestVersion(t *testing.T) {
	harness.NeedTool(t, "git")
	out := version(t, makeBinary(t))
	want := stableVersion(t)
	commit := git(t, "rev-parse", "--short", "HEAD")
	if v := describe(t); v != want {
		t.Skipf("the checkout changed since make build ran (%s, now %s); run again", want, v)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.GreaterOrEqual(t, len(lines), 2, "-version output: %q", out)
	require.Equal(t, "CoreDNS-1.15.0+bluegreen-"+want, lines[0], "first line of -version")
	require.Equal(t, runtime.GOOS+"/"+runtime.GOARCH+", "+runtime.Version()+", "+commit, lines[1], "second line of -version")
	if want != "dev" {
		require.NotContains(t, lines[0], "bluegreen-dev", "the Makefile must stamp the version")
	}
}

package docs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// TestReadmeDNSSEC runs the README's DNSSEC steps as a user would paste
// them: dnssec-keygen makes a key, the built binary signs the example
// zones with it, dig sees the RRSIG, dnssec-dsfromkey prints the DS, and
// delv, trusting the key, validates an answer and a denial.
func TestReadmeDNSSEC(t *testing.T) {
	for _, tool := range []string{"dnssec-keygen", "dnssec-dsfromkey", "delv", "dig", "awk", "bash"} {
		harness.NeedTool(t, tool)
	}
	b, err := os.ReadFile(filepath.Join(harness.Root(), "README.md"))
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "### A signed zone (DNSSEC)")
	require.GreaterOrEqual(t, i, 0)
	start := strings.Index(doc[i:], "~~~ sh\n")
	require.GreaterOrEqual(t, start, 0)
	block := doc[i+start+len("~~~ sh\n"):]
	block = block[:strings.Index(block, "~~~\n")]
	require.Contains(t, block, "dnssec key file")
	script := strings.ReplaceAll(block, "bin/coredns", harness.Binary(t))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = harness.Root()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's DNSSEC steps:\n%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 4, "RRSIG count, DS, two validations:\n%s", out)
	assert.Equal(t, "1", lines[0], "one RRSIG over www's A set")
	assert.Regexp(t, `^example\.org\. IN DS \d+ 13 2 [0-9A-F]{64}$`, lines[1])
	assert.Equal(t, "; fully validated", lines[2])
	assert.Equal(t, "; negative response, fully validated", lines[3])
}

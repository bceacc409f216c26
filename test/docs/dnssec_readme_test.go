package docs

import (
	"strings"
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
	out := runReadmeSteps(t, "### A signed zone (DNSSEC)", 60*time.Second)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, "RRSIG count, DS, two validations:\n%s", out)
	assert.Equal(t, "1", lines[0], "one RRSIG over www's A set")
	assert.Regexp(t, `^example\.org\. IN DS \d+ 13 2 [0-9A-F]{64}$`, lines[1])
	assert.Equal(t, "; fully validated", lines[2])
	assert.Equal(t, "; negative response, fully validated", lines[3])
}

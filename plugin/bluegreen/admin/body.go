package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/rollout"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// MaxReason is the longest reason a change may carry, in bytes: the
// history keeps a thousand of them.
const MaxReason = 1024

// object decodes a JSON object into its members, strictly: anything but an
// object, a member not in allowed (nil allows every name), a member named
// twice and data after the object are errors.
func object(b []byte, what string, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty, want a JSON object", what)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s: want a JSON object", what)
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
		}
		key, _ := tok.(string)
		if allowed != nil && !contains(allowed, key) {
			return nil, fmt.Errorf("%s: unknown field %s (fields: %s)", what, short(key), strings.Join(allowed, ", "))
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("%s: %s named twice", what, short(key))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the JSON object", what)
	}
	return m, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// short quotes s for an error message, cut to a readable length.
func short(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

func isNull(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

// weightsBody is the body of PUT .../weights.
type weightsBody struct {
	weights map[string]uint64
	reason  string
}

func decodeWeights(b []byte) (weightsBody, error) {
	var wb weightsBody
	f, err := object(b, "body", "weights", "reason")
	if err != nil {
		return wb, err
	}
	if isNull(f["weights"]) {
		return wb, errors.New(`missing "weights": every pool must be named`)
	}
	raw, err := object(f["weights"], `"weights"`)
	if err != nil {
		return wb, err
	}
	pools := make([]string, 0, len(raw))
	for p := range raw {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	wb.weights = make(map[string]uint64, len(raw))
	for _, p := range pools {
		w, err := parseWeight(p, raw[p])
		if err != nil {
			return wb, err
		}
		wb.weights[p] = w
	}
	wb.reason, err = decodeReason(f)
	return wb, err
}

// parseWeight parses a weight strictly: a JSON number that is a
// non-negative integer written without fraction or exponent.
func parseWeight(pool string, raw json.RawMessage) (uint64, error) {
	s := string(raw)
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("weight of pool %s must be a non-negative integer, got %s", short(pool), short(s))
	}
	w, err := strconv.ParseUint(s, 10, 64)
	if err != nil || w > state.MaxWeight {
		return 0, fmt.Errorf("weight of pool %s is above the maximum %d", short(pool), state.MaxWeight)
	}
	return w, nil
}

// promoteBody is the body of POST .../promote.
type promoteBody struct {
	pool   string
	reason string
}

func decodePromote(b []byte) (promoteBody, error) {
	var pb promoteBody
	f, err := object(b, "body", "pool", "reason")
	if err != nil {
		return pb, err
	}
	if isNull(f["pool"]) {
		return pb, errors.New(`missing "pool"`)
	}
	if err := json.Unmarshal(f["pool"], &pb.pool); err != nil {
		return pb, errors.New(`"pool" must be a string`)
	}
	if pb.pool == "" {
		return pb, errors.New(`"pool" is empty`)
	}
	pb.reason, err = decodeReason(f)
	return pb, err
}

// decodeRollback decodes the optional body of POST .../rollback: empty, or
// an object with a reason.
func decodeRollback(b []byte) (string, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return "", nil
	}
	f, err := object(b, "body", "reason")
	if err != nil {
		return "", err
	}
	return decodeReason(f)
}

func decodeReason(f map[string]json.RawMessage) (string, error) {
	raw := f["reason"]
	if isNull(raw) {
		return "", nil
	}
	var reason string
	if err := json.Unmarshal(raw, &reason); err != nil {
		return "", errors.New(`"reason" must be a string`)
	}
	if len(reason) > MaxReason {
		return "", fmt.Errorf(`"reason" is longer than %d bytes`, MaxReason)
	}
	return reason, nil
}

// ifMatch parses the If-Match header: absent or "*" is no condition, else
// one version, quoted as in the ETag ("7"; a bare 7 is accepted too).
func ifMatch(r *http.Request) (*uint64, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return nil, nil
	}
	v := strings.TrimSpace(vals[0])
	if len(vals) > 1 || strings.Contains(v, ",") {
		return nil, errors.New("If-Match: give one version")
	}
	if v == "*" {
		return nil, nil
	}
	weak := strings.HasPrefix(v, "W/")
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return nil, fmt.Errorf(`If-Match: want a version in quotes, like "7", got %s`, short(vals[0]))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("If-Match: version %s is out of range", short(v))
	}
	// If-Match compares entity tags strongly and exactly (RFC 9110 13.1.1):
	// a weak tag, or "007" for the ETag "7", matches no version.
	if weak || strconv.FormatUint(n, 10) != v {
		return nil, errNoMatch
	}
	return &n, nil
}

// errNoMatch is an If-Match that can match no version (412).
var errNoMatch = errors.New("a weak or non-canonical entity tag matches no version (If-Match compares the ETag exactly)")

// rolloutBody is the body of POST .../rollout.
type rolloutBody struct {
	steps            []rollout.Step
	abortOnUnhealthy bool
	analysis         *analysis.Spec
	reason           string
}

func decodeRollout(b []byte) (rolloutBody, error) {
	var rb rolloutBody
	f, err := object(b, "body", "steps", "abort_on_unhealthy", "analysis", "reason")
	if err != nil {
		return rb, err
	}
	if isNull(f["steps"]) {
		return rb, errors.New(`missing "steps"`)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(f["steps"], &raw); err != nil {
		return rb, errors.New(`"steps" must be an array of {"weights":{...},"hold":"10m"}`)
	}
	if len(raw) == 0 {
		return rb, errors.New(`"steps" is empty`)
	}
	if len(raw) > rollout.MaxSteps {
		return rb, fmt.Errorf(`"steps" has more than %d steps`, rollout.MaxSteps)
	}
	for i, r := range raw {
		sf, err := object(r, fmt.Sprintf("step %d", i), "weights", "hold")
		if err != nil {
			return rb, err
		}
		wb, err := decodeWeights([]byte(`{"weights":` + string(orNull(sf["weights"])) + `}`))
		if err != nil {
			return rb, fmt.Errorf("step %d: %v", i, err)
		}
		var hold rollout.Duration
		if !isNull(sf["hold"]) {
			if err := json.Unmarshal(sf["hold"], &hold); err != nil {
				return rb, fmt.Errorf("step %d: %v", i, err)
			}
		} else if i < len(raw)-1 {
			return rb, fmt.Errorf(`step %d: missing "hold" (only the last step may omit it)`, i)
		}
		rb.steps = append(rb.steps, rollout.Step{Weights: wb.weights, Hold: hold})
	}
	if raw := f["abort_on_unhealthy"]; !isNull(raw) {
		if err := json.Unmarshal(raw, &rb.abortOnUnhealthy); err != nil {
			return rb, errors.New(`"abort_on_unhealthy" must be true or false`)
		}
	}
	if raw := f["analysis"]; !isNull(raw) {
		if rb.analysis, err = decodeAnalysis(raw); err != nil {
			return rb, err
		}
	}
	rb.reason, err = decodeReason(f)
	return rb, err
}

func orNull(raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return json.RawMessage("null")
	}
	return raw
}

// decodeAnalysis decodes a rollout's "analysis" strictly; the switch checks
// the values against its pools (analysis.Spec.Validate).
func decodeAnalysis(raw json.RawMessage) (*analysis.Spec, error) {
	f, err := object(raw, `"analysis"`, "interval", "checks")
	if err != nil {
		return nil, err
	}
	sp := &analysis.Spec{}
	if isNull(f["interval"]) {
		return nil, errors.New(`analysis: missing "interval"`)
	}
	if err := json.Unmarshal(f["interval"], &sp.Interval); err != nil {
		return nil, fmt.Errorf(`analysis: "interval" %v`, err)
	}
	if isNull(f["checks"]) {
		return nil, errors.New(`analysis: missing "checks"`)
	}
	var checks []json.RawMessage
	if err := json.Unmarshal(f["checks"], &checks); err != nil {
		return nil, errors.New(`analysis: "checks" must be an array of objects`)
	}
	if len(checks) > analysis.MaxChecks {
		return nil, fmt.Errorf(`analysis: "checks" has %d checks, at most %d`, len(checks), analysis.MaxChecks)
	}
	for i, r := range checks {
		what := fmt.Sprintf("analysis: check %d", i)
		cf, err := object(r, what, "name", "query", "pool", "min", "max", "failure_limit", "inconclusive_limit")
		if err != nil {
			return nil, err
		}
		c := analysis.Check{InconclusiveLimit: analysis.DefaultInconclusiveLimit}
		for _, s := range []struct {
			key string
			to  *string
		}{{"name", &c.Name}, {"query", &c.Query}, {"pool", &c.Pool}} {
			if isNull(cf[s.key]) {
				return nil, fmt.Errorf(`%s: missing %q`, what, s.key)
			}
			if err := json.Unmarshal(cf[s.key], s.to); err != nil {
				return nil, fmt.Errorf(`%s: %q must be a string`, what, s.key)
			}
		}
		for _, b := range []struct {
			key string
			to  **float64
		}{{"min", &c.Min}, {"max", &c.Max}} {
			if isNull(cf[b.key]) {
				continue
			}
			var v float64
			if err := json.Unmarshal(cf[b.key], &v); err != nil {
				return nil, fmt.Errorf(`%s: %q must be a number`, what, b.key)
			}
			*b.to = &v
		}
		for _, l := range []struct {
			key string
			to  *int
		}{{"failure_limit", &c.FailureLimit}, {"inconclusive_limit", &c.InconclusiveLimit}} {
			if isNull(cf[l.key]) {
				continue
			}
			s := string(cf[l.key])
			n, err := strconv.Atoi(s)
			if err != nil || strings.Trim(s, "0123456789") != "" || n > analysis.MaxLimit {
				return nil, fmt.Errorf(`%s: %q must be an integer from 0 to %d`, what, l.key, analysis.MaxLimit)
			}
			*l.to = n
		}
		sp.Checks = append(sp.Checks, c)
	}
	return sp, nil
}

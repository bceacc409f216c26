package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// FuzzAdminBody feeds arbitrary bodies to PUT .../weights (op%3 == 0),
// POST .../promote (1) and POST .../rollout (2). A handler never panics, never answers a 5xx
// but 503, and a 4xx leaves the switch as it was.
func FuzzAdminBody(f *testing.F) {
	for _, b := range []string{
		`{"weights":{"blue":90,"green":10},"reason":"canary"}`,
		`{"weights":{"blue":0,"green":1}}`,
		`{"weights":{"blue":90}}`,
		`{"weights":{"blue":1.5,"green":1e3}}`,
		`{"weights":{"blue":-1,"green":18446744073709551616}}`,
		`{"weights":{"blue":"1","green":null}}`,
		`{"weights":{"blue":1,"blue":2,"green":3}}`,
		`{"weights":{"blue":1,"green":1},"extra":true}`,
		`{"weights":{"blue":1,"green":1}}{}`,
		`{"pool":"green"}`,
		`{"pool":"red","reason":"x"}`,
		`{"pool":["green"]}`,
		`{"steps":[{"weights":{"blue":95,"green":5},"hold":"10m"},{"weights":{"blue":0,"green":100}}]}`,
		`{"steps":[{"weights":{"blue":0,"green":500}}]}`, // complete at start
		`{"steps":[{"weights":{"blue":1,"green":1},"hold":"-1s"}],"abort_on_unhealthy":true}`,
		`{"steps":[{"weights":{"blue":1},"hold":1}]}`,
		`[]`, `null`, `""`, `{`, `{"a":`, "\xff\xfe", ``,
	} {
		f.Add(uint8(0), b)
		f.Add(uint8(1), b)
		f.Add(uint8(2), b)
	}
	s := New(testAddr, testToken)
	sw := newSwitch(f, "fuzz.example", nil)
	s.Add(sw)

	f.Fuzz(func(t *testing.T, op uint8, body string) {
		if len(body) > 2*MaxReason {
			// Longer bodies find nothing new (TestErrors covers the
			// limits) and make minimizing slow.
			t.Skip()
		}
		q := req{method: http.MethodPut, path: "/v1/switches/fuzz.example/weights", body: body}
		switch op % 3 {
		case 1:
			q = req{method: http.MethodPost, path: "/v1/switches/fuzz.example/promote", body: body}
		case 2:
			q = req{method: http.MethodPost, path: "/v1/switches/fuzz.example/rollout", body: body}
		}
		before := sw.View()
		w := q.do(s)
		after := sw.View()
		switch {
		case w.Code == http.StatusOK:
			var v state.View
			if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
				t.Fatalf("200 with a body that is no state: %v: %s", err, w.Body.String())
			}
			if v.Version != before.Version+1 {
				t.Fatalf("200: expected version %d, got %d", before.Version+1, v.Version)
			}
			if op%3 == 2 {
				// End the rollout so the next input can start one.
				// (A plan whose holds have all passed, such as one step
				// without a hold, is recorded complete by its start.)
				if _, err := sw.AbortRollout(context.Background(), state.Update{Source: state.SourceAPI}); err != nil && !errors.Is(err, state.ErrNoRollout) {
					t.Fatalf("aborting the fuzzed rollout: %v", err)
				}
			}
		case w.Code >= 400 && w.Code < 500, w.Code == http.StatusServiceUnavailable:
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d with a body that is no error: %s", w.Code, w.Body.String())
			}
			if after.Version != before.Version || !reflect.DeepEqual(after.Weights, before.Weights) {
				t.Fatalf("%d changed the switch: version %d -> %d, weights %v -> %v", w.Code, before.Version, after.Version, before.Weights, after.Weights)
			}
		default:
			t.Fatalf("expected 200, 4xx or 503, got %d: %s", w.Code, w.Body.String())
		}
	})
}

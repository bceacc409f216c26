package admin

import (
	"net/http"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/analysis"
	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// analysisList is the body of GET .../rollout/analysis.
type analysisList struct {
	Measurements []analysis.Measurement `json:"measurements"`
}

// analysis lists the last measurements of the current or last rollout's
// analysis, newest first; 404 when that rollout has none.
func (s *Server) analysis(w http.ResponseWriter, _ *http.Request, sw *state.Switch, _ []byte) {
	ms, ok := sw.Measurements()
	if !ok {
		writeError(w, http.StatusNotFound, "the switch's current or last rollout has no analysis")
		return
	}
	out := analysisList{Measurements: make([]analysis.Measurement, 0, len(ms))}
	for i := len(ms) - 1; i >= 0; i-- {
		out.Measurements = append(out.Measurements, ms[i])
	}
	writeJSON(w, http.StatusOK, out)
}

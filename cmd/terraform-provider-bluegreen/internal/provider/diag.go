package provider

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

// apiDiag turns an error of the admin API into a diagnostic that quotes
// the server's message; what says what was being done.
func apiDiag(what string, err error) diag.Diagnostic {
	e, ok := err.(*client.Error)
	if !ok {
		return diag.NewErrorDiagnostic("Cannot reach the bluegreen admin API", what+": "+err.Error())
	}
	summary := "The bluegreen admin API refused the request"
	advice := ""
	switch e.Status {
	case http.StatusBadRequest:
		summary = "Invalid request for the bluegreen admin API"
	case http.StatusUnauthorized:
		summary = "Not authorized by the bluegreen admin API"
		advice = " Set token or token_file (or $" + EnvToken + ") to the Corefile's token."
	case http.StatusNotFound:
		summary = "No such switch"
	case http.StatusConflict:
		summary = "Conflict with a rollout on the switch"
	case http.StatusPreconditionFailed:
		summary = "The switch changed since it was read"
		advice = " Someone changed the switch after the plan read it, so nothing was overwritten. Run plan again to see the change."
	case http.StatusServiceUnavailable:
		summary = "The bluegreen store cannot commit"
		advice = " Nothing changed; apply again once the store answers."
	}
	detail := fmt.Sprintf("%s: %s %s answered %d %s: %q.%s", what, e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message, advice)
	return diag.NewErrorDiagnostic(summary, detail)
}

// checkPools checks weights against the switch's pools: every pool named,
// no other. It returns the diagnostics for the attribute at p.
func checkPools(sw *client.Switch, weights map[string]int64, p path.Path) diag.Diagnostics {
	var diags diag.Diagnostics
	pools := sw.PoolNames()
	has := map[string]bool{}
	for _, name := range pools {
		has[name] = true
	}
	var unknown, missing []string
	for name := range weights {
		if !has[name] {
			unknown = append(unknown, name)
		}
	}
	for _, name := range pools {
		if _, ok := weights[name]; !ok {
			missing = append(missing, name)
		}
	}
	sort.Strings(unknown)
	list := strings.Join(pools, ", ")
	for _, name := range unknown {
		diags.AddAttributeError(p, "Unknown pool",
			fmt.Sprintf("Switch %s has no pool %q (its pools: %s).", sw.Name, name, list))
	}
	if len(missing) > 0 {
		diags.AddAttributeError(p, "Missing pool weights",
			fmt.Sprintf("Switch %s has pools %s: the weights must name every pool (a missing pool is never a silent 0), missing %s.", sw.Name, list, strings.Join(missing, ", ")))
	}
	return diags
}

package provider

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

// The API's limits on a rollout's analysis (docs/analysis.md).
const (
	MinInterval = time.Second
	MaxInterval = 24 * time.Hour
	MaxChecks   = 20
	MaxLimit    = 1000
)

// analysisModel and checkModel hold the analysis attribute. Every field is
// a framework value, so an unknown value (a module's input) is not an
// error before apply.
type analysisModel struct {
	Interval types.String `tfsdk:"interval"`
	Checks   types.List   `tfsdk:"checks"`
}

type checkModel struct {
	Name              types.String  `tfsdk:"name"`
	Query             types.String  `tfsdk:"query"`
	Pool              types.String  `tfsdk:"pool"`
	Min               types.Float64 `tfsdk:"min"`
	Max               types.Float64 `tfsdk:"max"`
	FailureLimit      types.Int64   `tfsdk:"failure_limit"`
	InconclusiveLimit types.Int64   `tfsdk:"inconclusive_limit"`
}

func analysisSchema() schema.Attribute {
	limit := func(what string) schema.Int64Attribute {
		return schema.Int64Attribute{Optional: true, Description: what, Validators: []validator.Int64{limitValidator{}}}
	}
	return schema.SingleNestedAttribute{
		Optional: true,
		Description: "Canary analysis (needs `analysis prometheus` in the Corefile): each check's PromQL is measured every interval " +
			"once a step has taken effect; a step ends only when its hold has passed and every check has passed in it. " +
			"Failures over failure_limit abort the rollout, inconclusive measurements over inconclusive_limit in a row pause it.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		Attributes: map[string]schema.Attribute{
			"interval": schema.StringAttribute{
				Required:    true,
				Description: fmt.Sprintf("How often each check is measured, a Go duration from %s to %s.", MinInterval, MaxInterval),
				Validators:  []validator.String{intervalValidator{}},
			},
			"checks": schema.ListNestedAttribute{
				Required:    true,
				Description: fmt.Sprintf("1 to %d checks, each with min, max or both.", MaxChecks),
				Validators:  []validator.List{checksCount{}},
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"name": schema.StringAttribute{
							Required:    true,
							Description: "1-64 letters, digits, '-', '_' or '.'; unique.",
							Validators:  []validator.String{checkNameValidator{}},
						},
						"query": schema.StringAttribute{
							Required:    true,
							Description: "PromQL; {{pool}}, {{switch}} and {{step}} are substituted.",
						},
						"pool": schema.StringAttribute{
							Required:    true,
							Description: "The pool of the switch the check judges ({{pool}}).",
						},
						"min":                schema.Float64Attribute{Optional: true, Description: "Lowest passing value (inclusive)."},
						"max":                schema.Float64Attribute{Optional: true, Description: "Highest passing value (inclusive)."},
						"failure_limit":      limit(fmt.Sprintf("Failed measurements tolerated over the rollout (0 to %d, server default 0); one more aborts it.", MaxLimit)),
						"inconclusive_limit": limit(fmt.Sprintf("Inconclusive measurements in a row tolerated (0 to %d, server default 3); one more pauses the rollout.", MaxLimit)),
					},
				},
			},
		},
	}
}

// analysisChecks returns the analysis in obj and its checks; nil when obj
// is null or unknown, and a nil slice when the checks (or one of them)
// are unknown.
func analysisChecks(ctx context.Context, obj types.Object, diags *diagnostics) (*analysisModel, []checkModel) {
	if obj.IsNull() || obj.IsUnknown() {
		return nil, nil
	}
	var a analysisModel
	diags.Append(obj.As(ctx, &a, basetypes.ObjectAsOptions{})...)
	if diags.HasError() || a.Checks.IsNull() || a.Checks.IsUnknown() {
		return &a, nil
	}
	checks := make([]checkModel, 0, len(a.Checks.Elements()))
	for _, e := range a.Checks.Elements() {
		o, ok := e.(types.Object)
		if !ok || o.IsNull() || o.IsUnknown() {
			return &a, nil
		}
		var c checkModel
		diags.Append(o.As(ctx, &c, basetypes.ObjectAsOptions{})...)
		checks = append(checks, c)
	}
	return &a, checks
}

// validateAnalysis checks what the schema cannot: each check has a bound,
// min is not above max, and names are unique.
func validateAnalysis(ctx context.Context, obj types.Object, diags *diagnostics) {
	_, checks := analysisChecks(ctx, obj, diags)
	names := map[string]int{}
	for i, c := range checks {
		at := path.Root("analysis").AtName("checks").AtListIndex(i)
		if c.Min.IsNull() && c.Max.IsNull() {
			diags.AddAttributeError(at, "Check without bounds",
				fmt.Sprintf("Check %d (%s) has neither min nor max: give at least one, or every value would pass.", i, c.Name.ValueString()))
		}
		if known(c.Min) && known(c.Max) && c.Min.ValueFloat64() > c.Max.ValueFloat64() {
			diags.AddAttributeError(at.AtName("min"), "min above max",
				fmt.Sprintf("Check %d (%s) has min %g above max %g: no value could pass.", i, c.Name.ValueString(), c.Min.ValueFloat64(), c.Max.ValueFloat64()))
		}
		if known(c.Name) {
			if j, dup := names[c.Name.ValueString()]; dup {
				diags.AddAttributeError(at.AtName("name"), "Duplicate check name",
					fmt.Sprintf("Checks %d and %d are both named %q.", j, i, c.Name.ValueString()))
			}
			names[c.Name.ValueString()] = i
		}
	}
}

// checkAnalysisPools refuses a check on a pool the switch does not have.
func checkAnalysisPools(ctx context.Context, sw *client.Switch, obj types.Object, diags *diagnostics) {
	_, checks := analysisChecks(ctx, obj, diags)
	has := map[string]bool{}
	for _, p := range sw.PoolNames() {
		has[p] = true
	}
	for i, c := range checks {
		if known(c.Pool) && !has[c.Pool.ValueString()] {
			diags.AddAttributeError(path.Root("analysis").AtName("checks").AtListIndex(i).AtName("pool"), "Unknown pool",
				fmt.Sprintf("Switch %s has no pool %q (its pools: %v).", sw.Name, c.Pool.ValueString(), sw.PoolNames()))
		}
	}
}

// clientAnalysis returns the analysis as the API takes it; nil without
// one, and false (with an error) when some value is still unknown.
func clientAnalysis(ctx context.Context, obj types.Object, diags *diagnostics) (*client.Analysis, bool) {
	if obj.IsNull() {
		return nil, true
	}
	unknown := func() (*client.Analysis, bool) {
		diags.AddAttributeError(path.Root("analysis"), "Unknown analysis", "The analysis must be known when the rollout starts.")
		return nil, false
	}
	a, checks := analysisChecks(ctx, obj, diags)
	if diags.HasError() {
		return nil, false
	}
	if a == nil || checks == nil || !known(a.Interval) {
		return unknown()
	}
	out := &client.Analysis{Interval: a.Interval.ValueString(), Checks: make([]client.Check, len(checks))}
	for i, c := range checks {
		if !known(c.Name) || !known(c.Query) || !known(c.Pool) ||
			c.Min.IsUnknown() || c.Max.IsUnknown() || c.FailureLimit.IsUnknown() || c.InconclusiveLimit.IsUnknown() {
			return unknown()
		}
		out.Checks[i] = client.Check{
			Name: c.Name.ValueString(), Query: c.Query.ValueString(), Pool: c.Pool.ValueString(),
			Min: c.Min.ValueFloat64Pointer(), Max: c.Max.ValueFloat64Pointer(),
			FailureLimit: c.FailureLimit.ValueInt64Pointer(), InconclusiveLimit: c.InconclusiveLimit.ValueInt64Pointer(),
		}
	}
	return out, true
}

// sameAnalysis reports whether the server's analysis ra is the one a:
// both absent, or the same interval and the same checks by name and pool.
func sameAnalysis(ra *client.RolloutAnalysis, a *client.Analysis) bool {
	if ra == nil || a == nil {
		return ra == nil && a == nil
	}
	if !sameHold(ra.Interval, a.Interval) || len(ra.Checks) != len(a.Checks) {
		return false
	}
	for i := range a.Checks {
		if ra.Checks[i].Name != a.Checks[i].Name || ra.Checks[i].Pool != a.Checks[i].Pool {
			return false
		}
	}
	return true
}

func known(v attr.Value) bool { return !v.IsNull() && !v.IsUnknown() }

// intervalValidator accepts a Go duration from MinInterval to MaxInterval.
type intervalValidator struct{}

func (intervalValidator) Description(context.Context) string {
	return fmt.Sprintf("a Go duration from %s to %s", MinInterval, MaxInterval)
}

func (v intervalValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (intervalValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if d, err := time.ParseDuration(s); err != nil || d < MinInterval || d > MaxInterval {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid interval",
			fmt.Sprintf("%q is not a Go duration from %s to %s (like 30s).", s, MinInterval, MaxInterval))
	}
}

// checksCount requires 1 to MaxChecks checks.
type checksCount struct{}

func (checksCount) Description(context.Context) string {
	return fmt.Sprintf("from 1 to %d checks", MaxChecks)
}

func (v checksCount) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (checksCount) ValidateList(_ context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if n := len(req.ConfigValue.Elements()); n < 1 || n > MaxChecks {
		resp.Diagnostics.AddAttributeError(req.Path, "Wrong number of checks",
			fmt.Sprintf("An analysis has from 1 to %d checks, got %d.", MaxChecks, n))
	}
}

var checkName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkNameValidator accepts what the API takes as a check's name.
type checkNameValidator struct{}

func (checkNameValidator) Description(context.Context) string {
	return "1-64 letters, digits, '-', '_' or '.'"
}

func (v checkNameValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (checkNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); !checkName.MatchString(s) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid check name",
			fmt.Sprintf("%q is not a check name: want 1-64 letters, digits, '-', '_' or '.'.", s))
	}
}

// limitValidator accepts a limit from 0 to MaxLimit.
type limitValidator struct{}

func (limitValidator) Description(context.Context) string {
	return fmt.Sprintf("an integer from 0 to %d", MaxLimit)
}

func (v limitValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (limitValidator) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if n := req.ConfigValue.ValueInt64(); n < 0 || n > MaxLimit {
		resp.Diagnostics.AddAttributeError(req.Path, "Limit out of range",
			fmt.Sprintf("%d is not from 0 to %d.", n, MaxLimit))
	}
}

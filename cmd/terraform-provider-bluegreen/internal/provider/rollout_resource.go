package provider

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

// MaxSteps is the most steps a rollout may have (the API's limit).
const MaxSteps = 100

// pollInterval is how often an apply with wait = true reads the switch.
var pollInterval = 500 * time.Millisecond

// Status of a rollout this resource started that the switch no longer
// shows (another rollout followed it).
const superseded = "superseded"

type rolloutResource struct {
	client *client.Client
}

var (
	_ resource.ResourceWithConfigure      = (*rolloutResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*rolloutResource)(nil)
	_ resource.ResourceWithValidateConfig = (*rolloutResource)(nil)
)

func newRolloutResource() resource.Resource { return &rolloutResource{} }

type rolloutModel struct {
	ID               types.String `tfsdk:"id"`
	Switch           types.String `tfsdk:"switch"`
	Steps            []stepModel  `tfsdk:"steps"`
	AbortOnUnhealthy types.Bool   `tfsdk:"abort_on_unhealthy"`
	Analysis         types.Object `tfsdk:"analysis"`
	Reason           types.String `tfsdk:"reason"`
	Wait             types.Bool   `tfsdk:"wait"`
	StartedAt        types.String `tfsdk:"started_at"`
	Status           types.String `tfsdk:"status"`
	StatusReason     types.String `tfsdk:"status_reason"`
}

type stepModel struct {
	Weights types.Map    `tfsdk:"weights"`
	Hold    types.String `tfsdk:"hold"`
}

func (r *rolloutResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_rollout"
}

func (r *rolloutResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "A stepwise rollout on one switch. Create starts it; any change to it starts a new one; " +
			"destroy aborts it while it runs (restoring the weights from before it) and changes nothing once it has ended.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "The switch name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"switch": schema.StringAttribute{
				Required:      true,
				Description:   "The switch the rollout runs on.",
				Validators:    []validator.String{switchNameValidator{}},
				PlanModifiers: replace,
			},
			"steps": schema.ListNestedAttribute{
				Required:      true,
				Description:   "The steps in order: step i+1 takes effect when step i's hold has passed.",
				Validators:    []validator.List{stepsCount{}},
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"weights": schema.MapAttribute{
							Required:    true,
							ElementType: types.Int64Type,
							Description: "Pool name to weight; every pool of the switch must be named.",
							Validators:  []validator.Map{weightsValidator{}},
						},
						"hold": schema.StringAttribute{
							Optional:    true,
							Description: "How long the step holds, a Go duration (10m); only the last step may omit it.",
							Validators:  []validator.String{durationValidator{}},
						},
					},
				},
			},
			"abort_on_unhealthy": schema.BoolAttribute{
				Optional:      true,
				Computed:      true,
				Default:       booldefault.StaticBool(false),
				Description:   "Abort the rollout when a pool it gives a weight turns unhealthy.",
				PlanModifiers: []planmodifier.Bool{boolplanmodifier.RequiresReplace()},
			},
			"analysis": analysisSchema(),
			"reason": schema.StringAttribute{
				Optional:      true,
				Description:   "Recorded with the start in the switch's history.",
				PlanModifiers: replace,
			},
			"wait": schema.BoolAttribute{
				Optional:    true,
				Computed:    true,
				Default:     booldefault.StaticBool(false),
				Description: "Block the apply until the rollout has completed; an abort fails the apply with its reason.",
			},
			"started_at": schema.StringAttribute{
				Computed:      true,
				Description:   "When the rollout started (RFC 3339).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"status": schema.StringAttribute{
				Computed:    true,
				Description: "running, paused, completed, aborted, or superseded (another rollout followed it).",
			},
			"status_reason": schema.StringAttribute{
				Computed:    true,
				Description: "Why the rollout was aborted; empty otherwise.",
			},
		},
	}
}

func (r *rolloutResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = configured(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig refuses a step before the last without a hold, and an
// analysis check without a bound (see validateAnalysis).
func (r *rolloutResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var an types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("analysis"), &an)...)
	if !resp.Diagnostics.HasError() {
		validateAnalysis(ctx, an, &resp.Diagnostics)
	}
	var steps []stepModel
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("steps"), &steps)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for i, s := range steps {
		if i < len(steps)-1 && s.Hold.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root("steps").AtListIndex(i).AtName("hold"), "Missing hold",
				fmt.Sprintf("Step %d has no hold: only the last step may omit it.", i))
		}
	}
}

// ModifyPlan reads the switch and checks every step's pools. The start is
// not conditional on a version: replacing a running rollout aborts it
// first, which changes the version, and the server refuses a second
// running rollout itself (409).
func (r *rolloutResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.client == nil || !req.State.Raw.IsNull() {
		return
	}
	var m rolloutModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Switch.IsUnknown() {
		return
	}
	sw := readSwitch(ctx, r.client, m.Switch.ValueString(), &resp.Diagnostics)
	if sw == nil {
		return
	}
	for i, s := range m.Steps {
		if w, ok := int64Map(ctx, s.Weights, &resp.Diagnostics); ok {
			resp.Diagnostics.Append(checkPools(sw, w, path.Root("steps").AtListIndex(i).AtName("weights"))...)
		}
	}
	checkAnalysisPools(ctx, sw, m.Analysis, &resp.Diagnostics)
}

func (r *rolloutResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m rolloutModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	steps := make([]client.Step, len(m.Steps))
	for i, s := range m.Steps {
		w, ok := int64Map(ctx, s.Weights, &resp.Diagnostics)
		if !ok {
			resp.Diagnostics.AddAttributeError(path.Root("steps").AtListIndex(i).AtName("weights"), "Unknown weights", "The weights must be known when the rollout starts.")
			return
		}
		steps[i].Weights = make(map[string]uint64, len(w))
		for k, v := range w {
			steps[i].Weights[k] = uint64(v)
		}
		steps[i].Hold = s.Hold.ValueString()
	}
	an, ok := clientAnalysis(ctx, m.Analysis, &resp.Diagnostics)
	if !ok {
		return
	}
	name := m.Switch.ValueString()
	sw, err := r.client.StartRollout(ctx, name, steps, m.AbortOnUnhealthy.ValueBool(), an, m.Reason.ValueString(), nil)
	if err != nil {
		resp.Diagnostics.Append(apiDiag("starting a rollout on switch "+name, err))
		return
	}
	if sw.Rollout == nil {
		resp.Diagnostics.AddError("Rollout not started", "The admin API answered the start of a rollout on switch "+name+" without a rollout: a bug in the server or the provider.")
		return
	}
	m.ID = types.StringValue(name)
	m.StartedAt = types.StringValue(sw.Rollout.StartedAt.UTC().Format(time.RFC3339Nano))
	setStatus(&m, sw.Rollout.State, sw.Rollout.Reason)
	// Record the rollout before waiting: an interrupted or failed wait
	// leaves it in the state (tainted), so destroy can abort it.
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	if resp.Diagnostics.HasError() || !m.Wait.ValueBool() {
		return
	}
	r.wait(ctx, &m, steps, an, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// wait polls the switch until the rollout m started has ended (or the
// context ends); an abort is an error quoting the reason, whether it came
// through the API, from a health check or from the analysis (its reason
// names the check, value and bound).
func (r *rolloutResource) wait(ctx context.Context, m *rolloutModel, steps []client.Step, an *client.Analysis, diags *diagnostics) {
	name := m.Switch.ValueString()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			diags.AddError("Stopped waiting for the rollout",
				fmt.Sprintf("The rollout on switch %s was still %s when the wait was cut short (%v); it keeps running on the server.", name, m.Status.ValueString(), ctx.Err()))
			return
		case <-t.C:
		}
		sw, err := r.client.Switch(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			diags.Append(apiDiag("waiting for the rollout on switch "+name, err))
			return
		}
		if !sameRollout(ctx, sw.Rollout, m, steps, an) {
			setStatus(m, superseded, "")
			diags.AddError("Rollout superseded", fmt.Sprintf("Switch %s no longer shows the rollout this apply started: another rollout was started.", name))
			return
		}
		setStatus(m, sw.Rollout.State, sw.Rollout.Reason)
		switch sw.Rollout.State {
		case client.Completed:
			return
		case client.Aborted:
			diags.AddError("Rollout aborted",
				fmt.Sprintf("The rollout on switch %s was aborted: %q. The switch is back on the weights from before it: %s.",
					name, sw.Rollout.Reason, formatWeights(sw.Weights)))
			return
		}
	}
}

func (r *rolloutResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m rolloutModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Switch.ValueString()
	sw, err := r.client.Switch(ctx, name)
	if client.StatusOf(err) == 404 {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(apiDiag("reading switch "+name, err))
		return
	}
	if sameRollout(ctx, sw.Rollout, &m, nil, nil) {
		setStatus(&m, sw.Rollout.State, sw.Rollout.Reason)
	} else {
		setStatus(&m, superseded, "")
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Update only changes wait (every other attribute replaces the rollout).
func (r *rolloutResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior rolloutModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.Status, m.StatusReason = prior.Status, prior.StatusReason
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete aborts the rollout while it runs or is paused; an ended or
// superseded rollout leaves the switch as it is.
func (r *rolloutResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m rolloutModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Switch.ValueString()
	sw, err := r.client.Switch(ctx, name)
	if client.StatusOf(err) == 404 {
		return
	}
	if err != nil {
		resp.Diagnostics.Append(apiDiag("reading switch "+name, err))
		return
	}
	if !sameRollout(ctx, sw.Rollout, &m, nil, nil) || (sw.Rollout.State != client.Running && sw.Rollout.State != client.Paused) {
		return
	}
	_, err = r.client.AbortRollout(ctx, name, "bluegreen_rollout destroyed")
	if client.StatusOf(err) == 409 {
		return // it ended in the meantime
	}
	if err != nil {
		resp.Diagnostics.Append(apiDiag("aborting the rollout on switch "+name, err))
	}
}

// sameRollout reports whether ro is the rollout m started: a pause (and a
// step waiting for its checks) moves the start later, so it is the same
// steps and analysis started no earlier. steps and an are m's, computed
// from m when steps is nil.
func sameRollout(ctx context.Context, ro *client.Rollout, m *rolloutModel, steps []client.Step, an *client.Analysis) bool {
	if ro == nil {
		return false
	}
	started, err := time.Parse(time.RFC3339Nano, m.StartedAt.ValueString())
	if err != nil || ro.StartedAt.Before(started) || ro.AbortOnUnhealthy != m.AbortOnUnhealthy.ValueBool() {
		return false
	}
	if steps == nil {
		steps = modelSteps(m)
		var ignored diagnostics
		an, _ = clientAnalysis(ctx, m.Analysis, &ignored)
	}
	if len(ro.Steps) != len(steps) || !sameAnalysis(ro.Analysis, an) {
		return false
	}
	for i := range steps {
		if !maps.Equal(ro.Steps[i].Weights, steps[i].Weights) || !sameHold(ro.Steps[i].Hold, steps[i].Hold) {
			return false
		}
	}
	return true
}

// sameHold compares two Go durations as durations ("1m" is "1m0s").
func sameHold(a, b string) bool {
	da, erra := time.ParseDuration(orZero(a))
	db, errb := time.ParseDuration(orZero(b))
	return erra == nil && errb == nil && da == db
}

func orZero(s string) string {
	if s == "" {
		return "0s"
	}
	return s
}

func modelSteps(m *rolloutModel) []client.Step {
	steps := make([]client.Step, len(m.Steps))
	for i, s := range m.Steps {
		steps[i].Hold = s.Hold.ValueString()
		steps[i].Weights = map[string]uint64{}
		for k, v := range s.Weights.Elements() {
			if iv, ok := v.(types.Int64); ok {
				steps[i].Weights[k] = uint64(iv.ValueInt64())
			}
		}
	}
	return steps
}

func setStatus(m *rolloutModel, status, reason string) {
	m.Status = types.StringValue(status)
	m.StatusReason = types.StringValue(reason)
}

// formatWeights writes w as "blue=90, green=10", sorted by pool.
func formatWeights(w map[string]uint64) string {
	names := make([]string, 0, len(w))
	for k := range w {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%d", k, w[k])
	}
	return strings.Join(parts, ", ")
}

// stepsCount requires 1 to MaxSteps steps.
type stepsCount struct{}

func (stepsCount) Description(context.Context) string {
	return fmt.Sprintf("from 1 to %d steps", MaxSteps)
}

func (v stepsCount) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (stepsCount) ValidateList(_ context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if n := len(req.ConfigValue.Elements()); n < 1 || n > MaxSteps {
		resp.Diagnostics.AddAttributeError(req.Path, "Wrong number of steps",
			fmt.Sprintf("A rollout has from 1 to %d steps, got %d.", MaxSteps, n))
	}
}

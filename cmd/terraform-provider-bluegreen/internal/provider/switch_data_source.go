package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

type switchDataSource struct {
	client *client.Client
}

var _ datasource.DataSourceWithConfigure = (*switchDataSource)(nil)

func newSwitchDataSource() datasource.DataSource { return &switchDataSource{} }

type switchModel struct {
	Name          types.String `tfsdk:"name"`
	Version       types.Int64  `tfsdk:"version"`
	Weights       types.Map    `tfsdk:"weights"`
	Shares        types.Map    `tfsdk:"shares"`
	Healthy       types.Map    `tfsdk:"healthy"`
	UpdatedAt     types.String `tfsdk:"updated_at"`
	EffectiveAt   types.String `tfsdk:"effective_at"`
	RolloutState  types.String `tfsdk:"rollout_state"`
	RolloutStep   types.Int64  `tfsdk:"rollout_step"`
	RolloutReason types.String `tfsdk:"rollout_reason"`
}

func (d *switchDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_switch"
}

func (d *switchDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The state of one switch, as GET /v1/switches/{name} shows it.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				Required:    true,
				Description: "The switch name.",
				Validators:  []validator.String{switchNameValidator{}},
			},
			"version":      schema.Int64Attribute{Computed: true, Description: "The switch's version (the ETag)."},
			"weights":      schema.MapAttribute{Computed: true, ElementType: types.Int64Type, Description: "Configured weight per pool."},
			"shares":       schema.MapAttribute{Computed: true, ElementType: types.Float64Type, Description: "Share of answers per pool, from 0 to 1."},
			"healthy":      schema.MapAttribute{Computed: true, ElementType: types.BoolType, Description: "Health per pool."},
			"updated_at":   schema.StringAttribute{Computed: true, Description: "When the weights last changed (RFC 3339)."},
			"effective_at": schema.StringAttribute{Computed: true, Description: "When the last answer served under the previous weights expires from conforming caches (RFC 3339)."},
			"rollout_state": schema.StringAttribute{
				Computed:    true,
				Description: "The last rollout's state: running, paused, completed or aborted; null when the switch never had one.",
			},
			"rollout_step":   schema.Int64Attribute{Computed: true, Description: "Index of the rollout step in effect; null without a rollout."},
			"rollout_reason": schema.StringAttribute{Computed: true, Description: "Why the rollout was aborted; null otherwise."},
		},
	}
}

func (d *switchDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = configured(req.ProviderData, &resp.Diagnostics)
}

func (d *switchDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.client == nil {
		resp.Diagnostics.AddError("Provider not configured", "The bluegreen provider was not configured before reading a switch.")
		return
	}
	sw := readSwitch(ctx, d.client, m.Name.ValueString(), &resp.Diagnostics)
	if sw == nil {
		return
	}
	m.Version = types.Int64Value(int64(sw.Version))
	m.Weights = weightsValue(sw.Weights, &resp.Diagnostics)
	var diags diagnostics
	m.Shares, diags = types.MapValueFrom(ctx, types.Float64Type, sw.Shares)
	resp.Diagnostics.Append(diags...)
	healthy := map[string]bool{}
	for _, p := range sw.Pools {
		healthy[p.Name] = p.Healthy
	}
	m.Healthy, diags = types.MapValueFrom(ctx, types.BoolType, healthy)
	resp.Diagnostics.Append(diags...)
	m.UpdatedAt = timeValue(sw.UpdatedAt)
	m.EffectiveAt = timeValue(sw.EffectiveAt)
	m.RolloutState, m.RolloutStep, m.RolloutReason = types.StringNull(), types.Int64Null(), types.StringNull()
	if ro := sw.Rollout; ro != nil {
		m.RolloutState = types.StringValue(ro.State)
		m.RolloutStep = types.Int64Value(int64(ro.Step))
		if ro.Reason != "" {
			m.RolloutReason = types.StringValue(ro.Reason)
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func timeValue(t time.Time) types.String {
	if t.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339Nano))
}

package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

type weightsResource struct {
	client *client.Client
}

var (
	_ resource.ResourceWithConfigure   = (*weightsResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*weightsResource)(nil)
	_ resource.ResourceWithImportState = (*weightsResource)(nil)
)

func newWeightsResource() resource.Resource { return &weightsResource{} }

type weightsModel struct {
	ID      types.String `tfsdk:"id"`
	Switch  types.String `tfsdk:"switch"`
	Weights types.Map    `tfsdk:"weights"`
	Reason  types.String `tfsdk:"reason"`
	Version types.Int64  `tfsdk:"version"`
	IfMatch types.Int64  `tfsdk:"if_match"`
}

func (r *weightsResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_weights"
}

func (r *weightsResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The weights of one switch. Create and update PUT them, conditional on the version read while planning; " +
			"a change made outside shows as drift. Destroy changes nothing on the server: the weights stay.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "The switch name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"switch": schema.StringAttribute{
				Required:      true,
				Description:   "The switch: the Corefile's `name`, by default the first zone without its trailing dot.",
				Validators:    []validator.String{switchNameValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"weights": schema.MapAttribute{
				Required:    true,
				ElementType: types.Int64Type,
				Description: "Pool name to weight (0 to 1000000, relative). Every pool of the switch must be named.",
				Validators:  []validator.Map{weightsValidator{}},
			},
			"reason": schema.StringAttribute{
				Optional:    true,
				Description: "Recorded with the change in the switch's history.",
			},
			"version": schema.Int64Attribute{
				Computed:    true,
				Description: "The switch's version when last read or written.",
			},
			"if_match": schema.Int64Attribute{
				Computed:    true,
				Description: "The version the planned write is conditional on (If-Match): the switch's version read while planning.",
			},
		},
	}
}

func (r *weightsResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = configured(req.ProviderData, &resp.Diagnostics)
}

// ModifyPlan reads the switch and refuses weights that name a pool it does
// not have or miss one of its pools. A planned write gets if_match: the
// version the plan was made against (read now for a create, on refresh for
// an update), so a change made in between fails the apply.
func (r *weightsResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.client == nil {
		return
	}
	var m weightsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Switch.IsUnknown() || m.Weights.IsUnknown() {
		return
	}
	weights, ok := int64Map(ctx, m.Weights, &resp.Diagnostics)
	if !ok {
		return
	}
	sw := readSwitch(ctx, r.client, m.Switch.ValueString(), &resp.Diagnostics)
	if sw == nil {
		return
	}
	resp.Diagnostics.Append(checkPools(sw, weights, path.Root("weights"))...)
	if resp.Diagnostics.HasError() {
		return
	}
	if req.State.Raw.IsNull() {
		m.IfMatch = types.Int64Value(int64(sw.Version))
	} else {
		var prior weightsModel
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
		if resp.Diagnostics.HasError() || (prior.Weights.Equal(m.Weights) && prior.Reason.Equal(m.Reason)) {
			return
		}
		m.IfMatch = prior.Version
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &m)...)
}

func (r *weightsResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m weightsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.put(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *weightsResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m weightsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.put(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// put writes m's weights, conditional on m's if_match, and fills in m's
// computed attributes from the answer.
func (r *weightsResource) put(ctx context.Context, m *weightsModel, diags *diagnostics) {
	weights, ok := int64Map(ctx, m.Weights, diags)
	if !ok {
		return
	}
	name := m.Switch.ValueString()
	uw := make(map[string]uint64, len(weights))
	for k, v := range weights {
		uw[k] = uint64(v)
	}
	ifMatch := knownVersion(m.IfMatch)
	if ifMatch == nil {
		m.IfMatch = types.Int64Null()
	}
	what := fmt.Sprintf("setting the weights of switch %s", name)
	if ifMatch != nil {
		what += fmt.Sprintf(" (If-Match version %d, read while planning)", *ifMatch)
	}
	sw, err := r.client.PutWeights(ctx, name, uw, m.Reason.ValueString(), ifMatch)
	if err != nil {
		diags.Append(apiDiag(what, err))
		return
	}
	m.ID = types.StringValue(name)
	m.Version = types.Int64Value(int64(sw.Version))
}

func (r *weightsResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m weightsModel
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
	m.ID = types.StringValue(name)
	m.Version = types.Int64Value(int64(sw.Version))
	m.Weights = weightsValue(sw.Weights, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete forgets the resource: the switch keeps its weights, since there
// is no "no weights" to go back to.
func (r *weightsResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

// ImportState imports a switch by name.
func (r *weightsResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("switch"), req.ID)...)
}

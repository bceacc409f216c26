package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStringValidators(t *testing.T) {
	tests := []struct {
		v     validator.String
		value types.String
		ok    bool
	}{
		{durationValidator{}, types.StringValue("30s"), true},
		{durationValidator{}, types.StringValue("1h30m"), true},
		{durationValidator{}, types.StringValue("0s"), false},
		{durationValidator{}, types.StringValue("-1m"), false},
		{durationValidator{}, types.StringValue("10"), false},
		{durationValidator{}, types.StringNull(), true},
		{durationValidator{}, types.StringUnknown(), true},
		{switchNameValidator{}, types.StringValue("example.org"), true},
		{switchNameValidator{}, types.StringValue("canary"), true},
		{switchNameValidator{}, types.StringValue(""), false},
		{switchNameValidator{}, types.StringValue("a/b"), false},
		{switchNameValidator{}, types.StringValue(".."), false},
		{switchNameValidator{}, types.StringValue("a b"), false},
	}
	for i, tc := range tests {
		resp := &validator.StringResponse{}
		tc.v.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("x"), ConfigValue: tc.value}, resp)
		if got := !resp.Diagnostics.HasError(); got != tc.ok {
			t.Errorf("Test %d: %T(%s): expected ok=%v, got %v: %v", i, tc.v, tc.value, tc.ok, got, resp.Diagnostics)
		}
	}
}

func TestWeightsValidator(t *testing.T) {
	m := func(w map[string]attr.Value) types.Map { return types.MapValueMust(types.Int64Type, w) }
	tests := []struct {
		value types.Map
		want  string // "" for valid
	}{
		{m(map[string]attr.Value{"blue": types.Int64Value(90), "green": types.Int64Value(10)}), ""},
		{m(map[string]attr.Value{"blue": types.Int64Value(0), "green": types.Int64Value(MaxWeight)}), ""},
		{m(map[string]attr.Value{"blue": types.Int64Value(0), "green": types.Int64Value(0)}), "Weights sum to zero"},
		{m(map[string]attr.Value{"blue": types.Int64Value(-1), "green": types.Int64Value(1)}), "Weight out of range"},
		{m(map[string]attr.Value{"blue": types.Int64Value(MaxWeight + 1)}), "Weight out of range"},
		{m(map[string]attr.Value{"blue": types.Int64Null()}), "Missing weight"},
		// Unknown until apply: the sum cannot be checked yet.
		{m(map[string]attr.Value{"blue": types.Int64Unknown(), "green": types.Int64Value(0)}), ""},
		{types.MapUnknown(types.Int64Type), ""},
	}
	for i, tc := range tests {
		resp := &validator.MapResponse{}
		weightsValidator{}.ValidateMap(context.Background(), validator.MapRequest{Path: path.Root("weights"), ConfigValue: tc.value}, resp)
		if tc.want == "" {
			assert.False(t, resp.Diagnostics.HasError(), "Test %d: expected valid, got %v", i, resp.Diagnostics)
			continue
		}
		require.True(t, resp.Diagnostics.HasError(), "Test %d: expected %q", i, tc.want)
		assert.Equal(t, tc.want, resp.Diagnostics[0].Summary(), "Test %d", i)
	}
}

// TestRolloutValidateConfig runs the rollout resource's configuration
// validation through the protocol server: a missing hold before the last
// step, and the number of steps.
func TestRolloutValidateConfig(t *testing.T) {
	s := newServer(t)
	typ := s.schema.ResourceSchemas["bluegreen_rollout"].ValueType()
	stepsType := typ.(tftypes.Object).AttributeTypes["steps"].(tftypes.List)
	step := func(w map[string]int64, hold string) tftypes.Value {
		h := tftypes.NewValue(tftypes.String, nil)
		if hold != "" {
			h = str(hold)
		}
		return tftypes.NewValue(stepsType.ElementType, map[string]tftypes.Value{"weights": weightsVal(w), "hold": h})
	}
	steps := func(vals ...tftypes.Value) tftypes.Value { return tftypes.NewValue(stepsType, vals) }
	half := map[string]int64{"blue": 50, "green": 50}
	tests := []struct {
		steps tftypes.Value
		want  string
	}{
		{steps(step(half, "1m"), step(half, "")), ""},
		{steps(step(half, "")), ""},
		{steps(step(half, ""), step(half, "1m")), "Missing hold"},
		{steps(step(half, "soon")), "Invalid duration"},
		{steps(), "Wrong number of steps"},
		{steps(step(map[string]int64{"blue": 0}, "")), "Weights sum to zero"},
	}
	for i, tc := range tests {
		resp, err := s.p.ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{
			TypeName: "bluegreen_rollout",
			Config:   dv(t, typ, object(typ, map[string]tftypes.Value{"switch": str("example.org"), "steps": tc.steps})),
		})
		require.NoError(t, err)
		if tc.want == "" {
			assert.Empty(t, resp.Diagnostics, "Test %d: %s", i, diagText(resp.Diagnostics))
			continue
		}
		assert.Contains(t, diagText(resp.Diagnostics), tc.want, "Test %d", i)
	}
}

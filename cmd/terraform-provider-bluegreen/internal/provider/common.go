package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

type diagnostics = diag.Diagnostics

// configured returns the provider's client from a Configure request's
// ProviderData; nil before the provider is configured.
func configured(data any, diags *diagnostics) *client.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*client.Client)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("want *client.Client, got %T: a bug in the provider", data))
		return nil
	}
	return c
}

// readSwitch reads a switch while planning; a missing switch is an error
// on the switch attribute.
func readSwitch(ctx context.Context, c *client.Client, name string, diags *diagnostics) *client.Switch {
	sw, err := c.Switch(ctx, name)
	if client.StatusOf(err) == 404 {
		diags.AddAttributeError(path.Root("switch"), "No such switch",
			fmt.Sprintf("The admin API has no switch %q (it answered 404: %q). A switch is named by the Corefile's name, by default the first zone without its trailing dot.", name, err.(*client.Error).Message))
		return nil
	}
	if err != nil {
		diags.Append(apiDiag("reading switch "+name, err))
		return nil
	}
	return sw
}

// knownVersion returns v as an If-Match version; nil when v is null or
// unknown (an unconditional write).
func knownVersion(v types.Int64) *uint64 {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	x := uint64(v.ValueInt64())
	return &x
}

// int64Map returns m's elements; false when some is unknown or null.
func int64Map(ctx context.Context, m types.Map, diags *diagnostics) (map[string]int64, bool) {
	if m.IsNull() || m.IsUnknown() {
		return nil, false
	}
	for _, e := range m.Elements() {
		if e.IsNull() || e.IsUnknown() {
			return nil, false
		}
	}
	out := map[string]int64{}
	d := m.ElementsAs(ctx, &out, false)
	diags.Append(d...)
	return out, !d.HasError()
}

// weightsValue returns w as a map of Int64.
func weightsValue(w map[string]uint64, diags *diagnostics) types.Map {
	i := make(map[string]int64, len(w))
	for k, v := range w {
		i[k] = int64(v)
	}
	m, d := types.MapValueFrom(context.Background(), types.Int64Type, i)
	diags.Append(d...)
	return m
}

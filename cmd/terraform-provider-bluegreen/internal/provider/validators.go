package provider

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// MaxWeight is the largest weight the API takes.
const MaxWeight = 1_000_000

// durationValidator accepts a positive Go duration ("30s", "10m").
type durationValidator struct{}

func (durationValidator) Description(context.Context) string {
	return "a positive Go duration, like 30s or 10m"
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("%q is not a positive Go duration (like 30s or 10m).", s))
	}
}

// weightsValidator checks a weights map without the switch: every weight
// from 0 to MaxWeight, and a sum above 0. The pools are checked against
// the switch while planning.
type weightsValidator struct{}

func (weightsValidator) Description(context.Context) string {
	return fmt.Sprintf("weights from 0 to %d, not all 0", MaxWeight)
}

func (v weightsValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (weightsValidator) ValidateMap(ctx context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	var sum int64
	known := true
	for name, e := range req.ConfigValue.Elements() {
		w, ok := e.(types.Int64)
		if !ok || w.IsUnknown() {
			known = false
			continue
		}
		if w.IsNull() {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(name), "Missing weight", fmt.Sprintf("The weight of pool %q is null.", name))
			continue
		}
		if x := w.ValueInt64(); x < 0 || x > MaxWeight {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(name), "Weight out of range",
				fmt.Sprintf("The weight of pool %q is %d; weights go from 0 to %d.", name, x, MaxWeight))
			continue
		}
		sum += w.ValueInt64()
	}
	if known && sum == 0 && !resp.Diagnostics.HasError() {
		resp.Diagnostics.AddAttributeError(req.Path, "Weights sum to zero", "At least one pool needs a weight above 0.")
	}
}

// switchName matches what a switch may be called: a zone name without its
// trailing dot, or a Corefile `name`.
var switchName = regexp.MustCompile(`^[^/?#\s%]{1,253}$`)

// switchNameValidator refuses names that cannot be one path segment.
type switchNameValidator struct{}

func (switchNameValidator) Description(context.Context) string {
	return "a switch name: the Corefile's `name`, or the first zone without its trailing dot"
}

func (v switchNameValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (switchNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); !switchName.MatchString(s) || s == "." || s == ".." {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid switch name",
			fmt.Sprintf("%q is not a switch name: want the Corefile's name (e.g. example.org), without /, ?, #, %% or spaces.", s))
	}
}

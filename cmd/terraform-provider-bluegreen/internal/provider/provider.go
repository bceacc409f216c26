// Package provider is the bluegreen Terraform/OpenTofu provider: resources
// for a switch's weights and rollouts and a data source for its state, all
// through the admin API over HTTP.
package provider

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/bluegreen-dns/bluegreen/cmd/terraform-provider-bluegreen/internal/client"
)

// Address is the provider's registry address.
const Address = "registry.terraform.io/bluegreen-dns/bluegreen"

// DefaultURL is the admin API's default listener (the Corefile's default).
const DefaultURL = "http://127.0.0.1:8053"

// Environment variables that supply each provider setting the
// configuration leaves out.
const (
	EnvURL       = "BLUEGREEN_ADMIN_URL"
	EnvToken     = "BLUEGREEN_TOKEN"
	EnvTokenFile = "BLUEGREEN_TOKEN_FILE"
	EnvCAFile    = "BLUEGREEN_CA_FILE"
	EnvCertFile  = "BLUEGREEN_CERT_FILE"
	EnvKeyFile   = "BLUEGREEN_KEY_FILE"
	EnvTimeout   = "BLUEGREEN_TIMEOUT"
)

// New returns the provider factory for version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &bluegreenProvider{version: version} }
}

type bluegreenProvider struct {
	version string
}

type providerModel struct {
	AdminURL  types.String `tfsdk:"admin_url"`
	Token     types.String `tfsdk:"token"`
	TokenFile types.String `tfsdk:"token_file"`
	CAFile    types.String `tfsdk:"ca_file"`
	CertFile  types.String `tfsdk:"cert_file"`
	KeyFile   types.String `tfsdk:"key_file"`
	Timeout   types.String `tfsdk:"timeout"`
}

func (p *bluegreenProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "bluegreen"
	resp.Version = p.version
}

func (p *bluegreenProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Moves the weights of bluegreen switches (a CoreDNS plugin) through its admin API.",
		Attributes: map[string]schema.Attribute{
			"admin_url": schema.StringAttribute{
				Optional:    true,
				Description: "The admin API's base URL, http:// or https://. Default $" + EnvURL + ", else " + DefaultURL + ".",
			},
			"token": schema.StringAttribute{
				Optional:    true,
				Sensitive:   true,
				Description: "The bearer token (the Corefile's `token FILE`). Default $" + EnvToken + ". Conflicts with token_file.",
			},
			"token_file": schema.StringAttribute{
				Optional:    true,
				Description: "A file whose first line is the bearer token. Default $" + EnvTokenFile + ".",
			},
			"ca_file": schema.StringAttribute{
				Optional:    true,
				Description: "PEM CA certificates that verify an https admin_url. Default $" + EnvCAFile + ", else the system roots.",
			},
			"cert_file": schema.StringAttribute{
				Optional:    true,
				Description: "Client certificate (PEM) for mutual TLS, with key_file. Default $" + EnvCertFile + ".",
			},
			"key_file": schema.StringAttribute{
				Optional:    true,
				Description: "Client key (PEM) for mutual TLS, with cert_file. Default $" + EnvKeyFile + ".",
			},
			"timeout": schema.StringAttribute{
				Optional:    true,
				Validators:  []validator.String{durationValidator{}},
				Description: "Timeout of one API request, a Go duration. Default $" + EnvTimeout + ", else 30s.",
			},
		},
	}
}

// setting returns v's value, else the environment variable env's.
func setting(v types.String, env string) string {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueString()
	}
	return os.Getenv(env)
}

func (p *bluegreenProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for attr, v := range map[string]types.String{
		"admin_url": m.AdminURL, "token": m.Token, "token_file": m.TokenFile, "ca_file": m.CAFile,
		"cert_file": m.CertFile, "key_file": m.KeyFile, "timeout": m.Timeout,
	} {
		if v.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(attr), "Unknown provider setting",
				"The bluegreen provider needs "+attr+" before the plan: it reads the switches while planning. Use a value known at plan time.")
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	cfg := client.Config{
		URL:      setting(m.AdminURL, EnvURL),
		CAFile:   setting(m.CAFile, EnvCAFile),
		CertFile: setting(m.CertFile, EnvCertFile),
		KeyFile:  setting(m.KeyFile, EnvKeyFile),
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	token, tokenFile := setting(m.Token, EnvToken), setting(m.TokenFile, EnvTokenFile)
	switch {
	case !m.Token.IsNull() && !m.TokenFile.IsNull():
		resp.Diagnostics.AddAttributeError(path.Root("token_file"), "Conflicting provider settings", "Give token or token_file, not both.")
		return
	case !m.Token.IsNull() || tokenFile == "":
		cfg.Token = token
	default:
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("token_file"), "Cannot read the token file", err.Error())
			return
		}
		first, _, _ := strings.Cut(string(b), "\n")
		cfg.Token = strings.TrimSpace(first)
		if cfg.Token == "" {
			resp.Diagnostics.AddAttributeError(path.Root("token_file"), "Empty token file", "The first line of "+tokenFile+" is empty.")
			return
		}
	}
	if t := setting(m.Timeout, EnvTimeout); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			resp.Diagnostics.AddAttributeError(path.Root("timeout"), "Invalid timeout", "timeout "+t+" is not a positive Go duration (like 30s).")
			return
		}
		cfg.Timeout = d
	}
	c, err := client.New(cfg)
	if err != nil {
		resp.Diagnostics.AddError("Invalid bluegreen provider configuration", err.Error())
		return
	}
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *bluegreenProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newWeightsResource, newRolloutResource}
}

func (p *bluegreenProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newSwitchDataSource}
}

// Command rollouts-plugin-trafficrouter-bluegreen is an Argo Rollouts
// traffic-router plugin that moves a canary's share by changing the weights
// of a bluegreen switch through its admin API: the canary runs at the DNS
// layer, across clusters or outside any mesh.
//
// The Argo Rollouts controller starts it (hashicorp/go-plugin, net/rpc) when
// its argo-rollouts-config ConfigMap lists it as bluegreen-dns/bluegreen.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/argoproj/argo-rollouts/rollout/trafficrouting/plugin/rpc"
	goplugin "github.com/hashicorp/go-plugin"
)

// handshake is the controller's side of the go-plugin handshake for traffic
// routers (Argo's rollout/trafficrouting/plugin/client): a binary started
// without it prints a hint and exits instead of serving.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ARGO_ROLLOUTS_RPC_PLUGIN",
	MagicCookieValue: "trafficrouter",
}

// pluginKey is the name the controller dispenses the plugin by.
const pluginKey = "RpcTrafficRouterPlugin"

func main() {
	switch {
	case len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version"):
		fmt.Println(PluginName, version)
		return
	case len(os.Args) == 3 && (os.Args[1] == "-install" || os.Args[1] == "--install"):
		// An init container on an image without a shell: copy this binary
		// to the directory argo-rollouts-config's file:// location names.
		dst, err := install(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			os.Exit(1)
		}
		fmt.Println("installed", dst)
		return
	case len(os.Args) > 1:
		fmt.Fprintf(os.Stderr, "usage: %s [-version | -install DIR]\nWithout arguments it serves the Argo Rollouts controller, which starts it.\n", filepath.Base(os.Args[0]))
		os.Exit(2)
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins: map[string]goplugin.Plugin{
			pluginKey: &rpc.RpcTrafficRouterPlugin{Impl: NewRouter()},
		},
	})
}

// version is set by the Makefile's -ldflags.
var version = "dev"

// install copies the running binary into dir, executable, and returns its
// path there. The copy is written under a temporary name and renamed, so
// the controller never starts a half-written file.
func install(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst := filepath.Join(dir, "rollouts-plugin-trafficrouter-bluegreen")
	tmp, err := os.CreateTemp(dir, ".install-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

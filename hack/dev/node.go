package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vaultsync/vaultsync/test/testenv"
)

// startNode runs the test/node agent next to the environment (DEV_NODE=1),
// so the chart's Pods can run: it needs root, runc and iproute2. The
// emulator's proxy port is forwarded into every Pod; bin/image/vaultsync.tar
// (make image) is loaded when it exists, as vaultsync:dev.
func startNode(ctx context.Context, l layout, env *testenv.Env, step testenv.Step) (*testenv.NodeAgent, error) {
	var agent *testenv.NodeAgent
	err := step("starting the node agent (test/node: runc, one loopback-only netns per Pod)", func(ctx context.Context) (string, error) {
		u, err := url.Parse(env.Emulator.ProxyURL)
		if err != nil {
			return "", err
		}
		proxyPort, err := strconv.Atoi(u.Port())
		if err != nil {
			return "", fmt.Errorf("emulator proxy %q: %w", env.Emulator.ProxyURL, err)
		}
		o := testenv.NodeOptions{
			Config: env.CP.Config, NodeName: "vaultsync-dev-node", StateDir: filepath.Join(l.stateDir(), "node"),
			HostPorts: []int{proxyPort},
		}
		archive := filepath.Join(l.root, "bin", "image", "vaultsync.tar")
		if _, err := os.Stat(archive); err == nil {
			o.Images = []testenv.NodeImageArchive{{Path: archive}}
		}
		logf, err := os.Create(filepath.Join(l.stateDir(), "node.log"))
		if err != nil {
			return "", err
		}
		o.Log = logf
		if agent, err = testenv.NewNode(o); err != nil {
			return "", err
		}
		if err := agent.Start(ctx); err != nil {
			agent.Stop()
			return "", err
		}
		return fmt.Sprintf("node %s, %d image archive(s), log %s", agent.NodeName(), len(o.Images), logf.Name()), nil
	})
	return agent, err
}

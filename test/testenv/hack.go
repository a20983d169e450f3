package testenv

import (
	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/emulator/admin"
	"github.com/vaultsync/vaultsync/test/node"
)

// What make demo (hack/demo) and make dev-up (hack/dev) use of the packages
// an Env is made of, so that hack/ imports test/testenv and no other test
// package.

// K8sVersion is the version of the local control plane's binaries, built
// into bin/k8s/K8sVersion.
const K8sVersion = controlplane.Version

// BinDir returns the directory of the local control plane's binaries.
func BinDir() (string, error) { return controlplane.BinDir() }

// The emulator admin API's types of Env.Emulator.Admin's calls.
type (
	RoleAssignment = admin.RoleAssignment
	SecretVersion  = admin.SecretVersion
	LogFilter      = admin.LogFilter
)

// ServiceVault is the Key Vault service of the emulator's request log (LogFilter.Service).
const ServiceVault = admin.ServiceVault

// EmulatorConfig is the emulator's directory (tenant, identities, vaults).
type EmulatorConfig = emulator.Config

// LoadEmulatorConfig reads an emulator directory such as
// hack/demo/emulator.yaml.
func LoadEmulatorConfig(path string) (*EmulatorConfig, error) { return emulator.LoadConfig(path) }

// The node agent of test/node, which runs the chart's Pods next to an Env
// (make dev-up with DEV_NODE=1, the node suite).
type (
	NodeAgent        = node.Agent
	NodeOptions      = node.Options
	NodeImageArchive = node.ImageArchive
)

// NewNode prepares a node agent; Start runs it.
func NewNode(o NodeOptions) (*NodeAgent, error) { return node.New(o) }

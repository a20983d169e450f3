// Package e2e is the end-to-end suite of vaultsync: the built manager and
// kv-emulator binaries and kubectl against a real control plane. By default
// the control plane is the local one of test/controlplane and the binaries
// run as subprocesses (package test/testenv); with E2E_CLUSTER=kind the same
// specs target the current kubeconfig's cluster, where the operator is
// installed with the Helm chart and the emulator runs as its sidecar. See
// README.md.
package e2e

/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package chart

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/test/controlplane"
)

// The deadline of Eventually checks against the control plane.
const eventually = 60 * time.Second

// cluster is a local control plane (etcd and kube-apiserver; no kubelet, so
// no pod ever runs) with a client and the command-line tools.
type cluster struct {
	cp     *controlplane.ControlPlane
	client client.Client
	tools  *tool
}

// startCluster starts a control plane for one test and stops it at the end.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(cp.Stop)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{cp: cp, client: c, tools: newTool(t, cp.Kubeconfig)}
}

// kubectl runs the control plane's kubectl with stdin (may be empty) and
// fails the test on error.
func (c *cluster) kubectl(stdin string, args ...string) string {
	return c.tools.must(strings.NewReader(stdin), c.cp.Kubectl(), args...)
}

// exists reports whether obj (of key) exists now.
func (c *cluster) exists(obj client.Object, key client.ObjectKey) func() (bool, error) {
	return func() (bool, error) {
		err := c.client.Get(context.Background(), key, obj)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
}

// waitEstablished waits until the CRD is established.
func (c *cluster) waitEstablished(g Gomega, name string) {
	g.Eventually(func(g Gomega) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(c.client.Get(context.Background(), client.ObjectKey{Name: name}, crd)).To(Succeed())
		established := false
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		g.Expect(established).To(BeTrue(), "CRD %s not established", name)
	}).WithTimeout(eventually).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// sampleVaultSecret is a valid VaultSecret in namespace ns.
func sampleVaultSecret(ns, name string) string {
	return `apiVersion: vaultsync.io/v1alpha1
kind: VaultSecret
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  vault:
    url: https://example.vault.azure.net/
    auth:
      workloadIdentity:
        serviceAccountName: app
  data:
  - key: password
    remote:
      name: db-password
`
}

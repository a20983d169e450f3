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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The values combinations that matter; each is rendered and linted.
const (
	valuesDefault         = ``
	valuesWatchNamespaces = `
watchNamespaces: [team-a, team-b]
`
	valuesWorkloadIdentity = `
workloadIdentity:
  enabled: true
serviceAccount:
  annotations:
    azure.workload.identity/client-id: 11111111-2222-3333-4444-555555555555
    azure.workload.identity/tenant-id: 66666666-7777-8888-9999-000000000000
`
	valuesNoCRDs = `
crds:
  enabled: false
`
	valuesHA = `
replicas: 2
podDisruptionBudget:
  enabled: true
`
	valuesServiceMonitor = `
metrics:
  tls:
    secretName: vaultsync-metrics-tls
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
`
	valuesNamespaceSelectors = `
clusterConnections:
  namespaceSelectors: true
`
	valuesMetricsOff = `
metrics:
  enabled: false
`
	valuesExtras = `
image:
  tag: v9.9.9
imagePullSecrets: [{name: regcred}]
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector: {matchLabels: {app.kubernetes.io/name: vaultsync}}
extraEnv: [{name: HTTPS_PROXY, value: "http://proxy.internal:3128"}]
extraVolumes: [{name: ca, configMap: {name: corp-ca}}]
extraVolumeMounts: [{name: ca, mountPath: /etc/ssl/certs/corp, readOnly: true}]
manager:
  maxConcurrentReconciles: 4
  vaultRequests: 500
  vaultInterval: 10s
  coalesceWindow: 2s
  retryMaxDelay: 10m
  kubeAPIQPS: 20
  kubeAPIBurst: 40
  customAuthorityHosts: [adfs.local.azurestack.external, login.corp.example]
  logLevel: debug
  extraArgs: ["--enable-http2=false"]
`
)

// allValues names every combination, for lint and common checks.
var allValues = map[string]string{
	"default":                     valuesDefault,
	"watchNamespaces":             valuesWatchNamespaces,
	"workloadIdentity":            valuesWorkloadIdentity,
	"crds disabled":               valuesNoCRDs,
	"replicas 2 and PDB":          valuesHA,
	"serviceMonitor":              valuesServiceMonitor,
	"namespaceSelectors":          valuesNamespaceSelectors,
	"clusterConnections disabled": valuesNoClusterConnections,
	"watchNamespaces, clusterConnections disabled": valuesWatchNoClusterConnections,
	"watchNamespaces, namespaceSelectors":          valuesWatchNamespaces + valuesNamespaceSelectors,
	"metrics disabled":                             valuesMetricsOff,
	"extras":                                       valuesExtras,
	"events":                                       valuesEvents,
	"events with TLS":                              valuesEventsTLS,
	"events with ingress":                          valuesEventsIngress,
	"watchNamespaces, events":                      valuesWatchNamespaces + valuesEvents,
	"events, extras":                               valuesEventsTLS + valuesExtras,
	"proxy, CA from a ConfigMap":                   valuesProxy + valuesCAConfigMap,
	"CA from a Secret, events, extras":             valuesCASecret + valuesEventsTLS + valuesExtras,
}

func TestHelmLint(t *testing.T) {
	helm := helmBin(t)
	for name, values := range allValues {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := newTool(t, "").run(nil, helm, "lint", "--strict", chartRel, "--values", valuesFile(t, values))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(ContainSubstring("0 chart(s) failed"))
			g.Expect(out).NotTo(ContainSubstring("[WARNING]"))
			g.Expect(out).NotTo(ContainSubstring("[ERROR]"))
		})
	}
}

// TestTemplateCommon checks what must hold whatever the values: hardening,
// probes, the namespace of every object, no wildcard rights.
func TestTemplateCommon(t *testing.T) {
	for name, values := range allValues {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, values)
			d := m.deployment(t)
			pod := d.Spec.Template.Spec
			g.Expect(d.Namespace).To(Equal(releaseNamespace))

			g.Expect(pod.SecurityContext).NotTo(BeNil())
			g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
			g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
			g.Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeTrue()), "the manager needs its token to reach the API server")
			g.Expect(pod.ServiceAccountName).To(Equal("vaultsync"))

			g.Expect(pod.Containers).To(HaveLen(1))
			c := pod.Containers[0]
			g.Expect(c.Name).To(Equal("manager"))
			sc := c.SecurityContext
			g.Expect(sc).NotTo(BeNil())
			g.Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
			g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
			g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			g.Expect(sc.Privileged).To(HaveValue(BeFalse()))
			g.Expect(sc.Capabilities).NotTo(BeNil())
			g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
			g.Expect(sc.Capabilities.Add).To(BeEmpty())
			g.Expect(sc.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))

			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				g.Expect(c.Resources.Requests).To(HaveKey(res))
				g.Expect(c.Resources.Limits).To(HaveKey(res))
			}
			g.Expect(c.LivenessProbe).NotTo(BeNil())
			g.Expect(c.LivenessProbe.HTTPGet).To(HaveValue(HaveField("Path", "/healthz")))
			g.Expect(c.LivenessProbe.HTTPGet.Port).To(Equal(intstr.FromString("health")))
			g.Expect(c.ReadinessProbe).NotTo(BeNil())
			g.Expect(c.ReadinessProbe.HTTPGet).To(HaveValue(HaveField("Path", "/readyz")))
			g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "health"), HaveField("ContainerPort", int32(8081)))))

			g.Expect(c.Args).To(ContainElements("--leader-elect", "--health-probe-bind-address=:8081", "--hash-key-secret=vaultsync-hash-key"))
			g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"},
			}}))

			// The pod template carries the selector's labels.
			for k, v := range d.Spec.Selector.MatchLabels {
				g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
			}

			for _, o := range m {
				switch o.GetKind() {
				case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding":
					g.Expect(o.GetNamespace()).To(BeEmpty(), "%s %s", o.GetKind(), o.GetName())
				case "Role", "RoleBinding":
					// Checked per case.
				default:
					g.Expect(o.GetNamespace()).To(Equal(releaseNamespace), "%s %s", o.GetKind(), o.GetName())
				}
				g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), "%s %s", o.GetKind(), o.GetName())
			}
			for _, r := range allRules(t, m) {
				for _, f := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
					g.Expect(f).NotTo(ContainElement("*"), "wildcard in rule %+v", r)
				}
			}
			// Leader election: a Role in the release namespace, nothing cluster-wide.
			le := m.find("Role", releaseNamespace, "vaultsync-leader-election")
			g.Expect(le).NotTo(BeNil(), "leader-election Role; objects: %v", m.names())
			leRules := []rbacv1.PolicyRule{{
				APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
			}, {
				// controller-runtime's leader election records core/v1 Events.
				APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"},
			}}
			if eventsObjects(m) != nil {
				// With the events endpoint, the leader labels its own Pod.
				leRules = append(leRules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}})
			}
			g.Expect(convert[rbacv1.Role](t, le).Rules).To(Equal(leRules))
			expectBinding(g, t, m, "RoleBinding", releaseNamespace, "vaultsync-leader-election", "Role")
			for _, r := range allRules(t, m) {
				if slices.Contains(r.Resources, "leases") {
					g.Expect(r.APIGroups).To(Equal([]string{"coordination.k8s.io"}))
				}
			}
		})
	}
}

func TestTemplateDefault(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesDefault)
	d := m.deployment(t)
	c := d.Spec.Template.Spec.Containers[0]

	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))
	g.Expect(c.Image).To(Equal("ghcr.io/vaultsync/vaultsync:" + chartAppVersion(t)))
	g.Expect(c.Args).To(ContainElements("--metrics-bind-address=:8443", "--metrics-secure=true"))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--watch-namespaces")))
	g.Expect(c.Args).To(ContainElements("--cluster-connections=true", "--namespace-selectors=false"))
	g.Expect(d.Spec.Template.Labels).NotTo(HaveKey("azure.workload.identity/use"))

	// Cluster-wide RBAC with exactly the generated rules.
	cr := m.find("ClusterRole", "", "vaultsync-manager")
	g.Expect(cr).NotTo(BeNil(), "objects: %v", m.names())
	g.Expect(convert[rbacv1.ClusterRole](t, cr).Rules).To(Equal(generatedManagerRules(t)))
	expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-manager", "ClusterRole")
	g.Expect(m.find("Role", releaseNamespace, "vaultsync-hash-key")).To(BeNil(), "the ClusterRole already covers the hash-key Secret")

	// No namespaces rights unless asked for.
	for _, r := range allRules(t, m) {
		g.Expect(r.Resources).NotTo(ContainElement("namespaces"))
	}

	// Exactly these objects.
	kinds := map[string]int{}
	for _, o := range m {
		kinds[o.GetKind()]++
	}
	g.Expect(kinds).To(Equal(map[string]int{
		"CustomResourceDefinition": len(generatedCRDs(t)),
		"ServiceAccount":           1,
		"Deployment":               1,
		"Service":                  1,
		"ClusterRole":              3, // manager, metrics-auth, metrics-reader
		"ClusterRoleBinding":       2, // manager, metrics-auth
		"Role":                     1, // leader election
		"RoleBinding":              1,
	}))

	// The metrics Service reaches the secure port of the manager pods.
	svc := convert[corev1.Service](t, m.find("Service", releaseNamespace, "vaultsync-metrics"))
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(
		HaveField("Name", "https"), HaveField("Port", int32(8443)), HaveField("TargetPort", intstr.FromString("metrics")))))
	g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "metrics"), HaveField("ContainerPort", int32(8443)))))
	for k, v := range svc.Spec.Selector {
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
	}

	// The metrics filter's rights, in their own ClusterRole, and the reader role.
	auth := convert[rbacv1.ClusterRole](t, m.find("ClusterRole", "", "vaultsync-metrics-auth"))
	g.Expect(auth.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	))
	expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-metrics-auth", "ClusterRole")
	reader := convert[rbacv1.ClusterRole](t, m.find("ClusterRole", "", "vaultsync-metrics-reader"))
	g.Expect(reader.Rules).To(Equal([]rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}))
}

func TestTemplateCRDsMatchGenerated(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesDefault)
	want := generatedCRDs(t)
	got := m.ofKind("CustomResourceDefinition")
	g.Expect(got).To(HaveLen(len(want)))
	for _, w := range want {
		var r *unstructured.Unstructured
		for _, o := range got {
			if o.GetName() == w.GetName() {
				r = o.DeepCopy()
			}
		}
		g.Expect(r).NotTo(BeNil(), "chart lacks CRD %s: run 'make chart-crds'", w.GetName())
		// Uninstall keeps the CRD and with it every VaultSecret.
		g.Expect(r.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		g.Expect(r.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
		// Apart from those, the rendered CRD is the generated one, byte for
		// byte in every description (template delimiters included).
		ann := r.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		r.SetAnnotations(ann)
		r.SetLabels(nil)
		g.Expect(r.Object).To(Equal(w.Object), "chart CRD %s differs from config/crd/bases: run 'make chart-crds'", w.GetName())
	}
	// And the CRDs live in templates/, where helm upgrade upgrades them.
	_, err := os.Stat(filepath.Join(repoRoot(t), chartRel, "crds"))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "CRDs in the chart's crds/ folder are never upgraded by Helm")
}

func TestTemplateCRDsDisabled(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesNoCRDs)
	g.Expect(m.ofKind("CustomResourceDefinition")).To(BeEmpty())
	g.Expect(m.ofKind("Deployment")).To(HaveLen(1))
}

func TestTemplateWatchNamespaces(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesWatchNamespaces)
	c := m.deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElement("--watch-namespaces=team-a,team-b"))

	// No cluster-wide manager rights; Roles with the generated rules in the
	// watched namespaces only, less the cluster-scoped ClusterVaultConnections
	// (a Role cannot grant them; see TestTemplateWatchNamespacesClusterConnections).
	g.Expect(m.find("ClusterRole", "", "vaultsync-manager")).To(BeNil())
	g.Expect(m.find("ClusterRoleBinding", "", "vaultsync-manager")).To(BeNil())
	want := withoutClusterConnections(generatedManagerRules(t))
	var roleNamespaces []string
	for _, o := range m.ofKind("Role") {
		if o.GetName() == "vaultsync-manager" {
			roleNamespaces = append(roleNamespaces, o.GetNamespace())
			g.Expect(convert[rbacv1.Role](t, o).Rules).To(Equal(want))
			expectBinding(g, t, m, "RoleBinding", o.GetNamespace(), "vaultsync-manager", "Role")
		}
	}
	g.Expect(roleNamespaces).To(ConsistOf("team-a", "team-b"))
	var clusterRoles []string
	for _, o := range m.ofKind("ClusterRole") {
		clusterRoles = append(clusterRoles, o.GetName())
	}
	g.Expect(clusterRoles).To(ConsistOf("vaultsync-metrics-auth", "vaultsync-metrics-reader", "vaultsync-cluster-connections"))

	// The hash-key Secret of the release namespace: get that one Secret, create.
	hk := m.find("Role", releaseNamespace, "vaultsync-hash-key")
	g.Expect(hk).NotTo(BeNil(), "objects: %v", m.names())
	g.Expect(convert[rbacv1.Role](t, hk).Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"vaultsync-hash-key"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	))
	expectBinding(g, t, m, "RoleBinding", releaseNamespace, "vaultsync-hash-key", "Role")

	// Watching the release namespace itself needs no extra hash-key Role.
	m = renderChart(t, "watchNamespaces: [team-a, "+releaseNamespace+"]\n")
	g.Expect(m.find("Role", releaseNamespace, "vaultsync-manager")).NotTo(BeNil())
	g.Expect(m.find("Role", releaseNamespace, "vaultsync-hash-key")).To(BeNil())
}

func TestTemplateWorkloadIdentity(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesWorkloadIdentity)
	sa := m.find("ServiceAccount", releaseNamespace, "vaultsync")
	g.Expect(sa).NotTo(BeNil())
	g.Expect(sa.GetAnnotations()).To(And(
		HaveKeyWithValue("azure.workload.identity/client-id", "11111111-2222-3333-4444-555555555555"),
		HaveKeyWithValue("azure.workload.identity/tenant-id", "66666666-7777-8888-9999-000000000000"),
	))
	d := m.deployment(t)
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("azure.workload.identity/use", "true"))
	// A pod label only: the Deployment's immutable selector must not change.
	g.Expect(d.Spec.Selector.MatchLabels).NotTo(HaveKey("azure.workload.identity/use"))
}

func TestTemplateReplicasAndPDB(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesHA)
	d := m.deployment(t)
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(2))))
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--leader-elect"))
	pdbs := m.ofKind("PodDisruptionBudget")
	g.Expect(pdbs).To(HaveLen(1))
	pdb := convert[policyv1.PodDisruptionBudget](t, pdbs[0])
	g.Expect(pdb.Spec.MinAvailable).To(HaveValue(Equal(intstr.FromInt32(1))))
	g.Expect(pdb.Spec.MaxUnavailable).To(BeNil())
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))

	m = renderChart(t, valuesHA+"  maxUnavailable: 50%\n")
	pdb = convert[policyv1.PodDisruptionBudget](t, m.ofKind("PodDisruptionBudget")[0])
	g.Expect(pdb.Spec.MaxUnavailable).To(HaveValue(Equal(intstr.FromString("50%"))))
	g.Expect(pdb.Spec.MinAvailable).To(BeNil())

	g.Expect(renderChart(t, valuesDefault).ofKind("PodDisruptionBudget")).To(BeEmpty())
}

func TestTemplateServiceMonitor(t *testing.T) {
	g := NewWithT(t)
	g.Expect(renderChart(t, valuesDefault).ofKind("ServiceMonitor")).To(BeEmpty())

	m := renderChart(t, valuesServiceMonitor)
	sms := m.ofKind("ServiceMonitor")
	g.Expect(sms).To(HaveLen(1))
	sm := sms[0]
	g.Expect(sm.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))

	endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(endpoints).To(HaveLen(1))
	ep := endpoints[0].(map[string]any)
	g.Expect(ep).To(HaveKeyWithValue("port", "https"))
	g.Expect(ep).To(HaveKeyWithValue("scheme", "https"))
	g.Expect(ep).To(HaveKeyWithValue("path", "/metrics"))
	g.Expect(ep).To(HaveKeyWithValue("bearerTokenFile", "/var/run/secrets/kubernetes.io/serviceaccount/token"))
	// The scrape verifies the certificate the manager serves: the CA of its Secret, for the
	// name of the metrics Service.
	g.Expect(ep).To(HaveKeyWithValue("tlsConfig", map[string]any{
		"insecureSkipVerify": false,
		"ca":                 map[string]any{"secret": map[string]any{"name": "vaultsync-metrics-tls", "key": "ca.crt"}},
		"serverName":         "vaultsync-metrics." + releaseNamespace + ".svc",
	}))
	c := m.deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElement("--metrics-cert-dir=/etc/vaultsync/metrics-tls"))
	g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "metrics-tls", MountPath: "/etc/vaultsync/metrics-tls", ReadOnly: true}))
	vols := m.deployment(t).Spec.Template.Spec.Volumes
	g.Expect(vols).To(ContainElement(And(HaveField("Name", "metrics-tls"),
		HaveField("VolumeSource.Secret.SecretName", "vaultsync-metrics-tls"))))

	// Its selector picks the metrics Service.
	sel, _, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sel).NotTo(BeEmpty())
	svc := m.find("Service", releaseNamespace, "vaultsync-metrics")
	g.Expect(svc).NotTo(BeNil())
	for k, v := range sel {
		g.Expect(svc.GetLabels()).To(HaveKeyWithValue(k, v))
	}
	// ... and not the Deployment (different component).
	d := m.find("Deployment", releaseNamespace, "vaultsync")
	matchesAll := true
	for k, v := range sel {
		matchesAll = matchesAll && d.GetLabels()[k] == v
	}
	g.Expect(matchesAll).To(BeFalse())
}

// TestTemplateServiceMonitorTLS: the ServiceMonitor never scrapes unverified by default. With
// nothing to verify against the chart refuses to render; a CA of the user's choice, or an
// explicit insecureSkipVerify, is taken as given.
func TestTemplateServiceMonitorTLS(t *testing.T) {
	g := NewWithT(t)
	_, err := templateChart(t, "metrics:\n  serviceMonitor:\n    enabled: true\n")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("set metrics.tls.secretName"))

	tlsConfig := func(values string) map[string]any {
		t.Helper()
		sm := renderChart(t, values).ofKind("ServiceMonitor")
		g.Expect(sm).To(HaveLen(1))
		eps, _, err := unstructured.NestedSlice(sm[0].Object, "spec", "endpoints")
		g.Expect(err).NotTo(HaveOccurred())
		tc, _ := eps[0].(map[string]any)["tlsConfig"].(map[string]any)
		return tc
	}
	g.Expect(tlsConfig(`
metrics:
  serviceMonitor:
    enabled: true
    tlsConfig:
      ca: {configMap: {name: corp-ca, key: ca.pem}}
      serverName: metrics.example.internal
`)).To(Equal(map[string]any{
		"insecureSkipVerify": false,
		"ca":                 map[string]any{"configMap": map[string]any{"name": "corp-ca", "key": "ca.pem"}},
		"serverName":         "metrics.example.internal",
	}))
	g.Expect(tlsConfig(`
metrics:
  serviceMonitor:
    enabled: true
    tlsConfig: {insecureSkipVerify: true}
`)).To(Equal(map[string]any{"insecureSkipVerify": true}))

	// Without metrics.tls the manager serves its self-signed certificate and gets no --metrics-cert-dir.
	m := renderChart(t, valuesDefault)
	g.Expect(managerArgs(t, m)).NotTo(ContainElement(HavePrefix("--metrics-cert-dir")))
	g.Expect(m.deployment(t).Spec.Template.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "metrics-tls")))
}

func TestTemplateNamespaceSelectors(t *testing.T) {
	for name, values := range map[string]string{
		"cluster-wide":    valuesNamespaceSelectors,
		"watchNamespaces": valuesNamespaceSelectors + valuesWatchNamespaces,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, values)
			g.Expect(managerArgs(t, m)).To(ContainElement("--namespace-selectors=true"))
			cr := m.find("ClusterRole", "", "vaultsync-namespaces")
			g.Expect(cr).NotTo(BeNil(), "objects: %v", m.names())
			g.Expect(convert[rbacv1.ClusterRole](t, cr).Rules).To(Equal([]rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"},
			}}))
			expectBinding(g, t, m, "ClusterRoleBinding", "", "vaultsync-namespaces", "ClusterRole")
			// The manager's own rules stay the generated ones (less what a Role
			// cannot grant); only the namespaces ClusterRole reads Namespaces.
			for _, o := range m.ofKind("ClusterRole") {
				if o.GetName() == "vaultsync-manager" {
					g.Expect(convert[rbacv1.ClusterRole](t, o).Rules).To(Equal(generatedManagerRules(t)))
				}
			}
			for _, o := range m.ofKind("Role") {
				if o.GetName() == "vaultsync-manager" {
					g.Expect(convert[rbacv1.Role](t, o).Rules).To(Equal(withoutClusterConnections(generatedManagerRules(t))))
				}
			}
			for _, o := range append(m.ofKind("ClusterRole"), m.ofKind("Role")...) {
				if o.GetName() != "vaultsync-namespaces" {
					for _, r := range convert[rbacv1.ClusterRole](t, o).Rules {
						g.Expect(r.Resources).NotTo(ContainElement("namespaces"), "%s %s", o.GetKind(), o.GetName())
					}
				}
			}
		})
	}
}

func TestTemplateMetricsDisabled(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesMetricsOff)
	c := m.deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElement("--metrics-bind-address=0"))
	g.Expect(c.Ports).NotTo(ContainElement(HaveField("Name", "metrics")))
	g.Expect(m.ofKind("Service")).To(BeEmpty())
	g.Expect(m.find("ClusterRole", "", "vaultsync-metrics-auth")).To(BeNil())
	g.Expect(m.find("ClusterRole", "", "vaultsync-metrics-reader")).To(BeNil())
}

func TestTemplateExtras(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesExtras)
	d := m.deployment(t)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal("ghcr.io/vaultsync/vaultsync:v9.9.9"))
	g.Expect(pod.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "regcred"}}))
	g.Expect(pod.PriorityClassName).To(Equal("system-cluster-critical"))
	g.Expect(pod.NodeSelector).To(Equal(map[string]string{"kubernetes.io/os": "linux"}))
	g.Expect(pod.Tolerations).To(Equal([]corev1.Toleration{{
		Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "ops", Effect: corev1.TaintEffectNoSchedule,
	}}))
	g.Expect(pod.Affinity).To(HaveValue(HaveField("PodAntiAffinity", Not(BeNil()))))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy.internal:3128"}))
	g.Expect(c.Env[0].Name).To(Equal("POD_NAMESPACE"))
	g.Expect(pod.Volumes).To(ConsistOf(HaveField("Name", "ca")))
	g.Expect(c.VolumeMounts).To(ConsistOf(corev1.VolumeMount{Name: "ca", MountPath: "/etc/ssl/certs/corp", ReadOnly: true}))
	g.Expect(c.Args).To(ContainElements(
		"--max-concurrent-reconciles=4",
		"--vault-requests=500",
		"--vault-interval=10s",
		"--coalesce-window=2s",
		"--retry-max-delay=10m",
		"--kube-api-qps=20",
		"--kube-api-burst=40",
		"--custom-authority-hosts=adfs.local.azurestack.external,login.corp.example",
		"--zap-log-level=debug",
		"--enable-http2=false",
	))

	// Unset tuning values leave the binary's defaults alone.
	args := renderChart(t, valuesDefault).deployment(t).Spec.Template.Spec.Containers[0].Args
	for _, flag := range []string{"--max-concurrent-reconciles", "--vault-requests", "--vault-interval",
		"--coalesce-window", "--retry-max-delay", "--kube-api-qps", "--kube-api-burst", "--custom-authority-hosts"} {
		g.Expect(args).NotTo(ContainElement(HavePrefix(flag)))
	}
}

func TestSchemaRejectsMistakes(t *testing.T) {
	for name, tc := range map[string]struct{ values, want string }{
		"unknown top-level key":             {"replica: 2\n", "replica"},
		"unknown nested key":                {"image:\n  tagg: v1\n", "tagg"},
		"serviceMonitor typo":               {"metrics:\n  servicemonitor:\n    enabled: true\n", "servicemonitor"},
		"wrong type":                        {"replicas: two\n", "replicas"},
		"watchNamespaces string":            {"watchNamespaces: team-a\n", "watchNamespaces"},
		"bad namespace name":                {"watchNamespaces: [Team_A]\n", "watchNamespaces"},
		"bad duration":                      {"manager:\n  retryMaxDelay: 5 minutes\n", "retryMaxDelay"},
		"bad pull policy":                   {"image:\n  pullPolicy: Sometimes\n", "pullPolicy"},
		"clusterConnections typo":           {"clusterConnections:\n  enable: false\n", "enable"},
		"clusterConnections.enabled string": {"clusterConnections:\n  enabled: \"no\"\n", "enabled"},
		"clusterConnections.enabled null":   {"clusterConnections:\n  enabled: null\n", "enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := templateChart(t, tc.values)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("schema"))
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

// expectBinding checks that a (Cluster)RoleBinding binds the named role to the
// manager's ServiceAccount, and nothing else.
func expectBinding(g Gomega, t testing.TB, m manifest, kind, namespace, name, roleKind string) {
	t.Helper()
	o := m.find(kind, namespace, name)
	g.Expect(o).NotTo(BeNil(), "%s %s/%s missing; objects: %v", kind, namespace, name, m.names())
	b := convert[rbacv1.RoleBinding](t, o) // same shape as ClusterRoleBinding
	g.Expect(b.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: name}))
	g.Expect(b.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "vaultsync", Namespace: releaseNamespace}}))
}

// allRules returns the rules of every Role and ClusterRole in m.
func allRules(t testing.TB, m manifest) []rbacv1.PolicyRule {
	t.Helper()
	var out []rbacv1.PolicyRule
	for _, o := range append(m.ofKind("ClusterRole"), m.ofKind("Role")...) {
		out = append(out, convert[rbacv1.ClusterRole](t, o).Rules...)
	}
	return out
}

// chartAppVersion reads appVersion from Chart.yaml.
func chartAppVersion(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), chartRel, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(c.AppVersion) == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return c.AppVersion
}

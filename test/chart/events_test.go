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
	"testing"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Values that turn on the Key Vault events endpoint.
const (
	valuesEvents = `
events:
  enabled: true
`
	valuesEventsTLS = `
events:
  enabled: true
  tls:
    secretName: events-tls
`
	valuesEventsIngress = `
events:
  enabled: true
  ingress:
    enabled: true
    className: nginx
    host: events.example.com
    annotations:
      cert-manager.io/cluster-issuer: letsencrypt
    tls:
      - secretName: events-example-com
        hosts: [events.example.com]
`
)

// eventsTLSDir is where the chart mounts events.tls.secretName.
const eventsTLSDir = "/etc/vaultsync/events-tls"

// eventsObjects returns what the chart renders for the events endpoint: the
// Service and Ingress named vaultsync-events.
func eventsObjects(m manifest) []string {
	var out []string
	for _, o := range m {
		if (o.GetKind() == "Service" || o.GetKind() == "Ingress") && o.GetName() == "vaultsync-events" {
			out = append(out, o.GetKind()+" "+o.GetName())
		}
	}
	return out
}

func TestTemplateEventsOffByDefault(t *testing.T) {
	for name, values := range map[string]string{
		"default":         valuesDefault,
		"watchNamespaces": valuesWatchNamespaces,
		// Settings below events.enabled=false change nothing.
		"only sub-settings": `
events:
  port: 10443
  secretName: my-events
  tls: {secretName: events-tls}
  ingress: {enabled: true, host: events.example.com}
`,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := renderChart(t, values)
			pod := m.deployment(t).Spec.Template.Spec
			c := pod.Containers[0]
			g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--events-")))
			g.Expect(c.Ports).NotTo(ContainElement(HaveField("Name", "events")))
			g.Expect(pod.Volumes).NotTo(ContainElement(HaveField("Name", "events-tls")))
			g.Expect(c.VolumeMounts).NotTo(ContainElement(HaveField("Name", "events-tls")))
			g.Expect(eventsObjects(m)).To(BeEmpty())
			// No events Service to steer: the manager never labels or patches Pods.
			g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--leader-pod-label")))
			for _, r := range allRules(t, m) {
				g.Expect(r.Resources).NotTo(ContainElement("pods"), "rule %+v", r)
			}
			g.Expect(m.ofKind("Ingress")).To(BeEmpty())
			for _, r := range allRules(t, m) {
				g.Expect(r.ResourceNames).NotTo(ContainElement(ContainSubstring("events")), "rule %+v", r)
			}
			if hk := m.find("Role", releaseNamespace, "vaultsync-hash-key"); hk != nil {
				g.Expect(convert[rbacv1.Role](t, hk).Rules).To(ContainElement(rbacv1.PolicyRule{
					APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"vaultsync-hash-key"}, Verbs: []string{"get"},
				}))
			}
		})
	}
}

// TestTemplateEventsHandshake: the fallback for a subscription whose handshake lacks the key
// header is one flag, and only with events on.
func TestTemplateEventsHandshake(t *testing.T) {
	g := NewWithT(t)
	g.Expect(managerArgs(t, renderChart(t, valuesEvents+"  allowUnauthenticatedHandshake: true\n"))).
		To(ContainElement("--events-allow-unauthenticated-handshake"))
	g.Expect(managerArgs(t, renderChart(t, "events:\n  allowUnauthenticatedHandshake: true\n"))).
		NotTo(ContainElement(HavePrefix("--events-")))
}

func TestTemplateEventsEnabled(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesEvents)
	d := m.deployment(t)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]

	g.Expect(c.Args).To(ContainElements("--events-bind-address=:9443", "--events-secret=vaultsync-events"))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--events-cert-file")))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--events-key-file")))
	g.Expect(c.Args).NotTo(ContainElement("--events-allow-unauthenticated-handshake"), "handshakes need the key by default")
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "events", ContainerPort: 9443, Protocol: corev1.ProtocolTCP}))
	g.Expect(pod.Volumes).To(BeEmpty())
	g.Expect(c.VolumeMounts).To(BeEmpty())

	// A plain-HTTP Service reaches the events port of the manager pods.
	o := m.find("Service", releaseNamespace, "vaultsync-events")
	g.Expect(o).NotTo(BeNil(), "objects: %v", m.names())
	svc := convert[corev1.Service](t, o)
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
	g.Expect(svc.Spec.Ports).To(ConsistOf(corev1.ServicePort{
		Name: "http", Port: 9443, TargetPort: intstr.FromString("events"), Protocol: corev1.ProtocolTCP,
	}))
	// It selects the manager Pods, and of those only the one the leader labels.
	leaderSelector := map[string]string{"vaultsync.io/leader": "true"}
	for k, v := range d.Spec.Selector.MatchLabels {
		leaderSelector[k] = v
	}
	g.Expect(svc.Spec.Selector).To(Equal(leaderSelector))
	g.Expect(c.Args).To(ContainElement("--leader-pod-label=vaultsync.io/leader"))
	g.Expect(c.Env).To(ContainElement(And(HaveField("Name", "POD_NAME"),
		HaveField("ValueFrom.FieldRef.FieldPath", "metadata.name"))))
	// The Pod template never carries the label: only a running leader sets it.
	g.Expect(d.Spec.Template.Labels).NotTo(HaveKey("vaultsync.io/leader"))
	le := m.find("Role", releaseNamespace, "vaultsync-leader-election")
	g.Expect(le).NotTo(BeNil())
	g.Expect(convert[rbacv1.Role](t, le).Rules).To(ContainElement(rbacv1.PolicyRule{
		APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}}))
	g.Expect(svc.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "events"))
	// Not picked by the ServiceMonitor's selector, which looks for component=metrics.
	g.Expect(svc.Labels).NotTo(HaveKeyWithValue("app.kubernetes.io/component", "metrics"))
	g.Expect(m.ofKind("Ingress")).To(BeEmpty())

	// Cluster-wide, the manager ClusterRole already reads Secrets: it stays the
	// generated one, and no Role is added.
	cr := m.find("ClusterRole", "", "vaultsync-manager")
	g.Expect(cr).NotTo(BeNil())
	rules := convert[rbacv1.ClusterRole](t, cr).Rules
	g.Expect(rules).To(Equal(generatedManagerRules(t)))
	g.Expect(grants(rules, "", "secrets", "get")).To(BeTrue())
	g.Expect(m.find("Role", releaseNamespace, "vaultsync-hash-key")).To(BeNil())

	// Exactly one more object than the defaults: the Service.
	g.Expect(len(m)).To(Equal(len(renderChart(t, valuesDefault)) + 1))
}

func TestTemplateEventsNames(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, `
fullnameOverride: kv-sync
events:
  enabled: true
  port: 10443
`)
	c := m.deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElements("--events-bind-address=:10443", "--events-secret=kv-sync-events"))
	g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "events"), HaveField("ContainerPort", int32(10443)))))
	svc := convert[corev1.Service](t, m.find("Service", releaseNamespace, "kv-sync-events"))
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Port", int32(10443)), HaveField("TargetPort", intstr.FromString("events")))))

	m = renderChart(t, valuesEvents+"  secretName: eventgrid-key\n")
	g.Expect(managerArgs(t, m)).To(ContainElement("--events-secret=eventgrid-key"))
	g.Expect(managerArgs(t, m)).NotTo(ContainElement("--events-secret=vaultsync-events"))
}

func TestTemplateEventsRBACWatchNamespaces(t *testing.T) {
	g := NewWithT(t)
	createRule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}}
	getRule := func(names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: names, Verbs: []string{"get"}}
	}

	// The hash-key Role of the release namespace also gets the events Secret, by name.
	m := renderChart(t, valuesWatchNamespaces+valuesEvents)
	g.Expect(rulesOf(g, t, m, "Role", releaseNamespace, "vaultsync-hash-key")).To(ConsistOf(
		getRule("vaultsync-hash-key", "vaultsync-events"), createRule))
	expectBinding(g, t, m, "RoleBinding", releaseNamespace, "vaultsync-hash-key", "Role")
	// Nothing else changes: the watched namespaces keep the generated rules, and
	// no role lets the manager read every Secret of the release namespace.
	for _, ns := range []string{"team-a", "team-b"} {
		g.Expect(rulesOf(g, t, m, "Role", ns, "vaultsync-manager")).To(Equal(withoutClusterConnections(generatedManagerRules(t))))
	}
	for _, o := range m.ofKind("Role") {
		if o.GetNamespace() == releaseNamespace {
			g.Expect(grants(convert[rbacv1.Role](t, o).Rules, "", "secrets", "get")).To(BeFalse(), "Role %s", o.GetName())
		}
	}

	// Named Secrets are the ones granted.
	m = renderChart(t, valuesWatchNamespaces+valuesEvents+"  secretName: eventgrid-key\nmanager:\n  hashKeySecret: hmac\n")
	g.Expect(rulesOf(g, t, m, "Role", releaseNamespace, "vaultsync-hash-key")).To(ConsistOf(getRule("hmac", "eventgrid-key"), createRule))

	// One Secret for both is named once.
	m = renderChart(t, valuesWatchNamespaces+valuesEvents+"  secretName: vaultsync-hash-key\n")
	g.Expect(rulesOf(g, t, m, "Role", releaseNamespace, "vaultsync-hash-key")).To(ConsistOf(getRule("vaultsync-hash-key"), createRule))

	// Watching the release namespace: its manager Role reads Secrets already.
	m = renderChart(t, "watchNamespaces: [team-a, "+releaseNamespace+"]\n"+valuesEvents)
	g.Expect(m.find("Role", releaseNamespace, "vaultsync-hash-key")).To(BeNil())
	g.Expect(grants(rulesOf(g, t, m, "Role", releaseNamespace, "vaultsync-manager"), "", "secrets", "get")).To(BeTrue())

	// rbac.create=false creates no role at all.
	m = renderChart(t, valuesWatchNamespaces+valuesEvents+"rbac:\n  create: false\n")
	g.Expect(m.ofKind("Role")).To(BeEmpty())
	g.Expect(m.find("Service", releaseNamespace, "vaultsync-events")).NotTo(BeNil())
}

func TestTemplateEventsTLS(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesEventsTLS)
	pod := m.deployment(t).Spec.Template.Spec
	c := pod.Containers[0]

	g.Expect(c.Args).To(ContainElements(
		"--events-bind-address=:9443",
		"--events-cert-file="+eventsTLSDir+"/tls.crt",
		"--events-key-file="+eventsTLSDir+"/tls.key",
	))
	g.Expect(pod.Volumes).To(ConsistOf(corev1.Volume{Name: "events-tls", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: "events-tls", Items: []corev1.KeyToPath{
			{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"},
		}},
	}}))
	g.Expect(c.VolumeMounts).To(ConsistOf(corev1.VolumeMount{Name: "events-tls", MountPath: eventsTLSDir, ReadOnly: true}))
	// The root filesystem stays read-only.
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))

	svc := convert[corev1.Service](t, m.find("Service", releaseNamespace, "vaultsync-events"))
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Name", "https"), HaveField("Port", int32(9443)))))

	// Next to the user's own volumes.
	m = renderChart(t, valuesEventsTLS+`
extraVolumes: [{name: ca, configMap: {name: corp-ca}}]
extraVolumeMounts: [{name: ca, mountPath: /etc/ssl/certs/corp, readOnly: true}]
`)
	pod = m.deployment(t).Spec.Template.Spec
	g.Expect(pod.Volumes).To(ConsistOf(HaveField("Name", "events-tls"), HaveField("Name", "ca")))
	g.Expect(pod.Containers[0].VolumeMounts).To(ConsistOf(
		corev1.VolumeMount{Name: "events-tls", MountPath: eventsTLSDir, ReadOnly: true},
		corev1.VolumeMount{Name: "ca", MountPath: "/etc/ssl/certs/corp", ReadOnly: true},
	))
}

func TestTemplateEventsIngress(t *testing.T) {
	g := NewWithT(t)
	m := renderChart(t, valuesEventsIngress)
	ings := m.ofKind("Ingress")
	g.Expect(ings).To(HaveLen(1))
	ing := convert[networkingv1.Ingress](t, ings[0])
	g.Expect(ing.Name).To(Equal("vaultsync-events"))
	g.Expect(ing.Namespace).To(Equal(releaseNamespace))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("cert-manager.io/cluster-issuer", "letsencrypt"))
	g.Expect(ing.Spec.IngressClassName).To(HaveValue(Equal("nginx")))
	g.Expect(ing.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"events.example.com"}, SecretName: "events-example-com"}}))
	exact := networkingv1.PathTypeExact
	g.Expect(ing.Spec.Rules).To(Equal([]networkingv1.IngressRule{{
		Host: "events.example.com",
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{
				Path: "/events", PathType: &exact,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "vaultsync-events", Port: networkingv1.ServiceBackendPort{Name: "http"},
				}},
			}},
		}},
	}}))
	// The backend names a port the Service has.
	svc := convert[corev1.Service](t, m.find("Service", releaseNamespace, "vaultsync-events"))
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", "http")))

	// With TLS on the manager, the backend is the https port; without a class or
	// TLS list, neither is rendered.
	m = renderChart(t, valuesEventsTLS+"  ingress: {enabled: true, host: events.example.com}\n")
	ing = convert[networkingv1.Ingress](t, m.ofKind("Ingress")[0])
	g.Expect(ing.Spec.IngressClassName).To(BeNil())
	g.Expect(ing.Spec.TLS).To(BeEmpty())
	g.Expect(ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port).To(Equal(networkingv1.ServiceBackendPort{Name: "https"}))
}

func TestTemplateEventsPortClash(t *testing.T) {
	for name, tc := range map[string]struct {
		values string
		want   string // empty: renders
	}{
		"healthPort":                  {valuesEvents + "  port: 8081\n", "healthPort"},
		"metrics.port":                {valuesEvents + "  port: 8443\n", "metrics.port"},
		"metrics port, metrics off":   {valuesEvents + "  port: 8443\n" + valuesMetricsOff, ""},
		"moved metrics port is free":  {valuesEvents + "metrics:\n  port: 9000\n", ""},
		"moved metrics port is taken": {valuesEvents + "metrics:\n  port: 9443\n", "metrics.port"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := templateChart(t, tc.values)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestSchemaRejectsEventsMistakes(t *testing.T) {
	for name, tc := range map[string]struct{ values, want string }{
		"typo":                       {"events:\n  enable: true\n", "enable"},
		"enabled string":             {"events:\n  enabled: \"yes\"\n", "enabled"},
		"port out of range":          {"events:\n  port: 70000\n", "port"},
		"port string":                {"events:\n  port: \"9443\"\n", "port"},
		"bad secret name":            {"events:\n  secretName: Events_Key\n", "secretName"},
		"bad TLS secret name":        {"events:\n  tls:\n    secretName: My_Cert\n", "secretName"},
		"tls typo":                   {"events:\n  tls:\n    secret: x\n", "secret"},
		"service type":               {"events:\n  service:\n    type: ExternalName\n", "type"},
		"ingress without host":       {"events:\n  enabled: true\n  ingress:\n    enabled: true\n", "host"},
		"ingress bad host":           {"events:\n  ingress:\n    host: https://events.example.com\n", "host"},
		"ingress tls typo":           {"events:\n  ingress:\n    tls: [{secret: x}]\n", "secret"},
		"ingress annotations number": {"events:\n  ingress:\n    annotations: {a: 1}\n", "annotations"},
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

// subjectCanGet asks the API server whether the chart's ServiceAccount may get
// the Secret namespace/name.
func (c *cluster) subjectCanGet(g Gomega, namespace, name string) func() bool {
	return func() bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + releaseNamespace + ":vaultsync",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: "get", Resource: "secrets", Name: name,
			},
		}}
		g.Expect(c.client.Create(context.Background(), sar)).To(Succeed())
		return sar.Status.Allowed
	}
}

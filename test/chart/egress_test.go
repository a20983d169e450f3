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
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

// Values for egress through a proxy that inspects TLS with its own CA.
const (
	valuesProxy = `
proxy:
  httpsProxy: http://proxy.example.com:3128
  httpProxy: http://proxy.example.com:3129
  noProxy: " .corp.example.com, 10.20.0.0/16,,.svc "
`
	valuesCAConfigMap = `
extraCACertificates:
  configMap:
    name: corp-ca
    key: ca-bundle.pem
`
	valuesCASecret = `
extraCACertificates:
  secret:
    name: corp-ca
`
)

const (
	// extraCADir is where the chart mounts extraCACertificates.
	extraCADir = "/etc/vaultsync/ca"
	// extraCAVolume is the name of that volume.
	extraCAVolume = "extra-ca-certificates"
	// wantCertDir is SSL_CERT_DIR with extraCACertificates: the image's roots and the mounted CA.
	wantCertDir = "/etc/ssl/certs:" + extraCADir
	// alwaysDirect is what the chart appends to every NO_PROXY it renders.
	alwaysDirect = "$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,169.254.169.254"
)

// envValue returns the value of the container's variable name, and whether it is set.
func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// envNames returns the names of the container's variables, in order.
func envNames(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}

func TestTemplateEgressOffByDefault(t *testing.T) {
	for name, values := range map[string]string{
		"default": valuesDefault,
		// A key without a name mounts nothing.
		"CA keys only": "extraCACertificates:\n  configMap: {key: bundle.pem}\n  secret: {key: bundle.pem}\n",
		"empty proxy":  "proxy: {httpsProxy: \"\", httpProxy: \"\", noProxy: \"\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			pod := renderChart(t, values).deployment(t).Spec.Template.Spec
			c := pod.Containers[0]
			g.Expect(envNames(c)).To(Equal([]string{"POD_NAMESPACE"}))
			g.Expect(pod.Volumes).To(BeEmpty())
			g.Expect(c.VolumeMounts).To(BeEmpty())
		})
	}
}

func TestTemplateProxy(t *testing.T) {
	g := NewWithT(t)
	c := renderChart(t, valuesProxy+"extraEnv: [{name: EXTRA, value: x}]\n").deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Env).To(ContainElements(
		corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy.example.com:3128"},
		corev1.EnvVar{Name: "HTTP_PROXY", Value: "http://proxy.example.com:3129"},
		// The user's entries, trimmed and without empty or repeated ones, then the chart's.
		corev1.EnvVar{Name: "NO_PROXY", Value: ".corp.example.com,10.20.0.0/16,.svc,$(KUBERNETES_SERVICE_HOST),.cluster.local,169.254.169.254"},
	))
	// Upper case only, once each, after POD_NAMESPACE and before extraEnv (which
	// may refer to them); no CA without extraCACertificates.
	g.Expect(envNames(c)).To(Equal([]string{"POD_NAMESPACE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "EXTRA"}))

	// Only an HTTPS proxy: no HTTP_PROXY, and NO_PROXY still keeps the API server direct.
	c = renderChart(t, "proxy:\n  httpsProxy: http://proxy.example.com:3128\n").deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Env).To(Equal([]corev1.EnvVar{
		c.Env[0],
		{Name: "HTTPS_PROXY", Value: "http://proxy.example.com:3128"},
		{Name: "NO_PROXY", Value: alwaysDirect},
	}))

	// Only noProxy (HTTPS_PROXY from a Secret through extraEnv): NO_PROXY alone.
	c = renderChart(t, `
proxy:
  noProxy: .corp.example.com
extraEnv:
  - name: HTTPS_PROXY
    valueFrom: {secretKeyRef: {name: proxy, key: url}}
`).deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(envNames(c)).To(Equal([]string{"POD_NAMESPACE", "NO_PROXY", "HTTPS_PROXY"}))
	v, _ := envValue(c, "NO_PROXY")
	g.Expect(v).To(Equal(".corp.example.com," + alwaysDirect))
}

func TestTemplateExtraCACertificates(t *testing.T) {
	for name, tc := range map[string]struct {
		values string
		source corev1.VolumeSource
	}{
		"configMap": {valuesCAConfigMap, corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "corp-ca"},
			Items:                []corev1.KeyToPath{{Key: "ca-bundle.pem", Path: "ca.crt"}},
		}}},
		"secret, default key": {valuesCASecret, corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "corp-ca",
			Items:      []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
		}}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			pod := renderChart(t, tc.values).deployment(t).Spec.Template.Spec
			c := pod.Containers[0]
			g.Expect(pod.Volumes).To(Equal([]corev1.Volume{{Name: extraCAVolume, VolumeSource: tc.source}}))
			g.Expect(c.VolumeMounts).To(Equal([]corev1.VolumeMount{{Name: extraCAVolume, MountPath: extraCADir, ReadOnly: true}}))
			// The image's roots stay (SSL_CERT_FILE unset, /etc/ssl/certs listed) and
			// the mounted directory is added.
			g.Expect(envNames(c)).To(Equal([]string{"POD_NAMESPACE", "SSL_CERT_DIR"}))
			dir, _ := envValue(c, "SSL_CERT_DIR")
			g.Expect(dir).To(Equal(wantCertDir))
			g.Expect(strings.Split(dir, ":")).To(ContainElement(c.VolumeMounts[0].MountPath))
		})
	}

	// Beside the events certificate and extra volumes, each keeps its own.
	g := NewWithT(t)
	pod := renderChart(t, valuesCAConfigMap+valuesProxy+valuesEventsTLS+valuesExtras).deployment(t).Spec.Template.Spec
	c := pod.Containers[0]
	g.Expect(pod.Volumes).To(HaveLen(3))
	g.Expect(pod.Volumes).To(ContainElements(HaveField("Name", "events-tls"), HaveField("Name", extraCAVolume), HaveField("Name", "ca")))
	g.Expect(c.VolumeMounts).To(ConsistOf(
		corev1.VolumeMount{Name: "events-tls", MountPath: eventsTLSDir, ReadOnly: true},
		corev1.VolumeMount{Name: extraCAVolume, MountPath: extraCADir, ReadOnly: true},
		corev1.VolumeMount{Name: "ca", MountPath: "/etc/ssl/certs/corp", ReadOnly: true},
	))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "SSL_CERT_DIR", Value: wantCertDir}))
}

func TestSchemaRejectsEgressMistakes(t *testing.T) {
	for name, tc := range map[string]struct{ values, want string }{
		"configMap and secret": {valuesCAConfigMap + "  secret:\n    name: other-ca\n", "/extraCACertificates/secret/name"},
		"CA typo":              {"extraCACertificates:\n  configmap:\n    name: corp-ca\n", "configmap"},
		"CA key with a slash":  {"extraCACertificates:\n  secret:\n    name: corp-ca\n    key: certs/ca.crt\n", "/extraCACertificates/secret/key"},
		"CA bad name":          {"extraCACertificates:\n  configMap:\n    name: Corp_CA\n", "/extraCACertificates/configMap/name"},
		"proxy typo":           {"proxy:\n  httpsproxy: http://proxy.example.com:3128\n", "httpsproxy"},
		"proxy without scheme": {"proxy:\n  httpsProxy: proxy.example.com:3128\n", "/proxy/httpsProxy"},
		"proxy with a path":    {"proxy:\n  httpProxy: http://proxy.example.com:3128/path\n", "/proxy/httpProxy"},
		"noProxy list":         {"proxy:\n  noProxy: [.corp.example.com]\n", "/proxy/noProxy"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := templateChart(t, tc.values)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("schema"))
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
	// What a mature proxy setup looks like passes: credentials, socks5, both
	// keys named with only one object set.
	for _, values := range []string{
		"proxy:\n  httpsProxy: http://user:p%40ss@proxy.example.com:3128\n",
		"proxy:\n  httpsProxy: socks5://127.0.0.1:1080\n",
		valuesCAConfigMap + "  secret:\n    key: unused.pem\n",
		valuesCASecret + "  configMap:\n    name: \"\"\n",
	} {
		_, err := templateChart(t, values)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), values)
	}
}

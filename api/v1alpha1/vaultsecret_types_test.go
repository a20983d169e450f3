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

package v1alpha1

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestVaultSecretHelpers(t *testing.T) {
	cases := []struct {
		name        string
		spec        VaultSecretSpec
		wantTarget  string
		wantRefresh time.Duration
		wantPolicy  CreationPolicy
		wantType    corev1.SecretType
	}{
		{
			name:        "defaults",
			wantTarget:  "app",
			wantRefresh: DefaultRefreshInterval,
			wantPolicy:  CreationPolicyOwner,
			wantType:    corev1.SecretTypeOpaque,
		},
		{
			name: "explicit values",
			spec: VaultSecretSpec{
				RefreshInterval: &metav1.Duration{Duration: 5 * time.Minute},
				Target:          SecretTarget{Name: "other", CreationPolicy: CreationPolicyMerge, Type: corev1.SecretTypeTLS},
			},
			wantTarget:  "other",
			wantRefresh: 5 * time.Minute,
			wantPolicy:  CreationPolicyMerge,
			wantType:    corev1.SecretTypeTLS,
		},
		{
			name:        "refresh zero means sync once",
			spec:        VaultSecretSpec{RefreshInterval: &metav1.Duration{}},
			wantTarget:  "app",
			wantRefresh: 0,
			wantPolicy:  CreationPolicyOwner,
			wantType:    corev1.SecretTypeOpaque,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			vs := &VaultSecret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns"}, Spec: tc.spec}
			g.Expect(vs.TargetName()).To(Equal(tc.wantTarget))
			g.Expect(vs.RefreshIntervalOrDefault()).To(Equal(tc.wantRefresh))
			g.Expect(vs.CreationPolicyOrDefault()).To(Equal(tc.wantPolicy))
			g.Expect(vs.SecretTypeOrDefault()).To(Equal(tc.wantType))
		})
	}
}

func TestRemoteRefDefaults(t *testing.T) {
	cases := []struct {
		remote     RemoteRef
		wantType   ObjectType
		wantFormat Format
		wantDecode DecodeMode
		writesTLS  bool
	}{
		{RemoteRef{Name: "s"}, ObjectTypeSecret, "", DecodeNone, false},
		{RemoteRef{Name: "s", Decode: DecodeBase64}, ObjectTypeSecret, "", DecodeBase64, false},
		{RemoteRef{Name: "c", Type: ObjectTypeCertificate}, ObjectTypeCertificate, FormatTLS, DecodeNone, true},
		{RemoteRef{Name: "c", Type: ObjectTypeCertificate, Format: FormatTLS}, ObjectTypeCertificate, FormatTLS, DecodeNone, true},
		{RemoteRef{Name: "c", Type: ObjectTypeCertificate, Format: FormatPFX}, ObjectTypeCertificate, FormatPFX, DecodeNone, false},
		{RemoteRef{Name: "k", Type: ObjectTypeKey}, ObjectTypeKey, FormatPEM, DecodeNone, false},
		{RemoteRef{Name: "k", Type: ObjectTypeKey, Format: FormatJWK}, ObjectTypeKey, FormatJWK, DecodeNone, false},
	}
	for _, tc := range cases {
		t.Run(string(tc.remote.Type)+"/"+string(tc.remote.Format), func(t *testing.T) {
			g := NewWithT(t)
			r := tc.remote
			g.Expect(r.TypeOrDefault()).To(Equal(tc.wantType))
			g.Expect(r.FormatOrDefault()).To(Equal(tc.wantFormat))
			g.Expect(r.DecodeOrDefault()).To(Equal(tc.wantDecode))
			item := DataItem{Remote: r}
			g.Expect(item.WritesTLSKeys()).To(Equal(tc.writesTLS))
		})
	}
}

func TestSchemeAndDeepCopy(t *testing.T) {
	g := NewWithT(t)
	s := runtime.NewScheme()
	g.Expect(AddToScheme(s)).To(Succeed())
	gvks, _, err := s.ObjectKinds(&VaultSecret{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gvks).To(ConsistOf(GroupVersion.WithKind("VaultSecret")))
	g.Expect(GroupVersion.String()).To(Equal("vaultsync.io/v1alpha1"))

	orig := &VaultSecret{Spec: VaultSecretSpec{
		Vault:           &VaultRef{URL: "https://v.vault.azure.net/", Auth: VaultAuth{WorkloadIdentity: &WorkloadIdentityAuth{ServiceAccountName: "sa"}}},
		RefreshInterval: &metav1.Duration{Duration: time.Minute},
		Target:          SecretTarget{Labels: map[string]string{"a": "b"}, Template: &SecretTemplate{Data: map[string]string{"k": "v"}}},
		Data:            []DataItem{{Key: "k", Remote: RemoteRef{Name: "n"}}},
		DataFrom:        []DataFromSource{{Find: &FindSpec{Tags: map[string]string{"t": "v"}, Rewrite: &Rewrite{Regex: "x"}}}},
	}}
	cp := orig.DeepCopy()
	g.Expect(cp).To(Equal(orig))
	cp.Spec.Vault.Auth.WorkloadIdentity.ServiceAccountName = "changed"
	cp.Spec.Target.Labels["a"] = "changed"
	cp.Spec.Target.Template.Data["k"] = "changed"
	cp.Spec.Data[0].Key = "changed"
	cp.Spec.DataFrom[0].Find.Tags["t"] = "changed"
	cp.Spec.RefreshInterval.Duration = time.Hour
	g.Expect(orig.Spec.Vault.Auth.WorkloadIdentity.ServiceAccountName).To(Equal("sa"))
	g.Expect(orig.Spec.Target.Labels["a"]).To(Equal("b"))
	g.Expect(orig.Spec.Target.Template.Data["k"]).To(Equal("v"))
	g.Expect(orig.Spec.Data[0].Key).To(Equal("k"))
	g.Expect(orig.Spec.DataFrom[0].Find.Tags["t"]).To(Equal("v"))
	g.Expect(orig.Spec.RefreshInterval.Duration).To(Equal(time.Minute))
}

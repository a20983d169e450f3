package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// The fan-out of the demo: the certificate web-cert of the demo vault, as a TLS Secret, in every
// namespace labelled ingress=public, through a ClusterVaultConnection that allows them by name.
const (
	fanoutName       = "web-tls"
	fanoutConnection = "demo-fanout"
	fanoutLabel      = "ingress"
	fanoutCert       = "web-cert"
)

// fanoutNamespaces are the namespaces the demo creates and labels.
var fanoutNamespaces = []string{"shop", "blog"}

// fanout creates the namespaces, the ClusterVaultConnection and the ClusterVaultSecret, waits
// for a Ready copy in each namespace and prints them: Secret keys, the certificate's subject and
// the Key Vault reads the fan-out cost, never a value.
func (d *demo) fanout(ctx context.Context) error {
	started := time.Now()
	if err := d.step(ctx, fmt.Sprintf("creating namespaces %v labelled %s=public", fanoutNamespaces, fanoutLabel), func(ctx context.Context) (string, error) {
		for _, ns := range fanoutNamespaces {
			if err := testenv.EnsureNamespace(ctx, d.env.K8s, ns); err != nil {
				return "", err
			}
			n := &corev1.Namespace{}
			if err := d.env.K8s.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
				return "", err
			}
			patch := client.MergeFrom(n.DeepCopy())
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels[fanoutLabel] = "public"
			if err := d.env.K8s.Patch(ctx, n, patch); err != nil {
				return "", err
			}
		}
		return "", nil
	}); err != nil {
		return err
	}
	if err := d.step(ctx, "offering the vault to them: ClusterVaultConnection "+fanoutConnection+" (the identity of ServiceAccount "+d.namespace+"/"+testenv.ServiceAccount+")", func(ctx context.Context) (string, error) {
		return "", d.env.K8s.Create(ctx, &v1alpha1.ClusterVaultConnection{
			ObjectMeta: metav1.ObjectMeta{Name: fanoutConnection},
			Spec: v1alpha1.ClusterVaultConnectionSpec{
				URL: "https://" + testenv.Vault + ".vault.azure.net/",
				Auth: v1alpha1.VaultAuth{WorkloadIdentity: &v1alpha1.WorkloadIdentityAuth{
					ServiceAccountName: testenv.ServiceAccount, ServiceAccountNamespace: d.namespace}},
				AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: fanoutNamespaces},
			},
		})
	}); err != nil {
		return err
	}
	if err := d.step(ctx, "fanning certificate "+fanoutCert+" out to every namespace labelled "+fanoutLabel+"=public (ClusterVaultSecret "+fanoutName+")", func(ctx context.Context) (string, error) {
		return "", d.env.K8s.Create(ctx, &v1alpha1.ClusterVaultSecret{
			ObjectMeta: metav1.ObjectMeta{Name: fanoutName},
			Spec: v1alpha1.ClusterVaultSecretSpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{fanoutLabel: "public"}},
				Template: v1alpha1.VaultSecretTemplate{Spec: v1alpha1.VaultSecretSpec{
					ConnectionRef: &v1alpha1.ConnectionRef{Kind: v1alpha1.KindClusterVaultConnection, Name: fanoutConnection},
					Target:        v1alpha1.SecretTarget{Type: corev1.SecretTypeTLS},
					Data:          []v1alpha1.DataItem{{Remote: v1alpha1.RemoteRef{Name: fanoutCert, Type: v1alpha1.ObjectTypeCertificate}}},
				}},
			},
		})
	}); err != nil {
		return err
	}
	cvs := &v1alpha1.ClusterVaultSecret{}
	if err := d.step(ctx, "waiting for ClusterVaultSecret "+fanoutName+" to be Ready in every selected namespace", func(ctx context.Context) (string, error) {
		err := testenv.Poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
			if exited, err := d.env.Manager.Exited(); exited {
				return false, fmt.Errorf("the operator exited (%v)", err) //nolint:errorlint // err is nil on a clean exit
			}
			if err := d.env.K8s.Get(ctx, client.ObjectKey{Name: fanoutName}, cvs); err != nil {
				return false, nil
			}
			c := meta.FindStatusCondition(cvs.Status.Conditions, v1alpha1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cvs.Generation &&
				int(cvs.Status.ProvisionedCount) == len(fanoutNamespaces), nil
		})
		return "", err
	}); err != nil {
		return err
	}
	reads, err := d.env.Emulator.Admin.Log(ctx, testenv.LogFilter{Service: testenv.ServiceVault, Object: fanoutCert, Since: started})
	if err != nil {
		return &stepError{"reading the emulator's log", err}
	}
	secrets := make([]*corev1.Secret, 0, len(fanoutNamespaces))
	for _, ns := range cvs.Status.ProvisionedNamespaces {
		s := &corev1.Secret{}
		if err := d.env.K8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fanoutName}, s); err != nil {
			return &stepError{"reading the fanned-out Secrets", err}
		}
		secrets = append(secrets, s)
	}
	writeFanout(d.out, cvs, secrets, len(reads))
	return nil
}

// writeFanout prints the copies of a ClusterVaultSecret: per namespace the Secret's type, its
// keys with sizes and the certificate's subject; and how many Key Vault requests served them all.
func writeFanout(w io.Writer, cvs *v1alpha1.ClusterVaultSecret, secrets []*corev1.Secret, reads int) {
	reason := ""
	if c := meta.FindStatusCondition(cvs.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		reason = c.Reason
	}
	_, _ = fmt.Fprintf(w, "\nClusterVaultSecret %s: Ready=True %s, %d namespaces provisioned, %d failed (values are never printed)\n",
		cvs.Name, reason, cvs.Status.ProvisionedCount, cvs.Status.FailedCount)
	for _, s := range secrets {
		subject := "?"
		if b, _ := pem.Decode(s.Data[corev1.TLSCertKey]); b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				subject = c.Subject.CommonName
			}
		}
		_, _ = fmt.Fprintf(w, "  %-8s Secret %s (%s): tls.crt %d bytes, tls.key %d bytes, subject CN=%s\n",
			s.Namespace, s.Name, s.Type, len(s.Data[corev1.TLSCertKey]), len(s.Data[corev1.TLSPrivateKeyKey]), subject)
	}
	_, _ = fmt.Fprintf(w, "  Key Vault requests for %s during the fan-out: %d for %d namespaces (one identity: the copies share one read\n"+
		"  within the coalescing window, which may be the read of the demo namespace's own web-tls a few seconds before)\n\n",
		fanoutCert, reads, len(secrets))
}

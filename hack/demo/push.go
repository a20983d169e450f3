package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/test/testenv"
)

// pushSample is the VaultPushSecret of config/samples/push that the demo applies: a Secret of the
// namespace written into the vault, key by key and whole.
const (
	pushSample = "vaultpushsecret_password.yaml"
	pushName   = "reporting-db"
)

// push lets the demo's identity write secrets, applies the push sample and shows what reached
// the vault: object names, versions and the owner tag, never a value.
func (d *demo) push(ctx context.Context) error {
	if err := d.step(ctx, "granting the namespace's identity \"Key Vault Secrets Officer\" on "+testenv.Vault+" (a push writes)", func(ctx context.Context) (string, error) {
		return "", d.env.Emulator.Admin.AddRoleAssignment(ctx, testenv.Vault, testenv.RoleAssignment{Principal: "app", Role: "Key Vault Secrets Officer"})
	}); err != nil {
		return err
	}
	file := filepath.Join(d.root, "config", "samples", "push", pushSample)
	if err := d.step(ctx, "pushing Secret "+pushName+" into Key Vault (applying config/samples/push/"+pushSample+")", func(ctx context.Context) (string, error) {
		_, err := testenv.Kubectl(ctx, d.env.CP, "apply", "-n", d.namespace, "-f", file)
		return "", err
	}); err != nil {
		return err
	}
	ps := &v1alpha1.VaultPushSecret{}
	if err := d.step(ctx, "waiting for VaultPushSecret "+pushName+" to be Ready", func(ctx context.Context) (string, error) {
		err := testenv.Poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
			if exited, err := d.env.Manager.Exited(); exited {
				return false, fmt.Errorf("the operator exited (%v)", err) //nolint:errorlint // err is nil on a clean exit
			}
			if err := d.env.K8s.Get(ctx, client.ObjectKey{Namespace: d.namespace, Name: pushName}, ps); err != nil {
				return false, nil
			}
			c := meta.FindStatusCondition(ps.Status.Conditions, v1alpha1.ConditionReady)
			return c != nil && c.Status == "True" && c.ObservedGeneration == ps.Generation, nil
		})
		return "", err
	}); err != nil {
		return err
	}
	writePush(d.out, ps)
	return nil
}

// writePush prints what a VaultPushSecret wrote: objects and versions, the vault and the owner tag.
func writePush(w io.Writer, ps *v1alpha1.VaultPushSecret) {
	reason := ""
	if c := meta.FindStatusCondition(ps.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		reason = c.Reason
	}
	_, _ = fmt.Fprintf(w, "\nVaultPushSecret %s: Ready=True %s, Secret %q -> %s (values are never printed)\n", ps.Name, reason, ps.Spec.SecretRef.Name, ps.Status.PushedVault)
	for _, o := range ps.Status.Objects {
		_, _ = fmt.Fprintf(w, "  %-12s %-24s version %s\n", o.Type, o.Name, o.Version)
	}
	_, _ = fmt.Fprintf(w, "  tags         %s=%s, %s=%s, %s=<HMAC of the data>\n\n",
		v1alpha1.TagManagedBy, v1alpha1.TagManagedByValue, v1alpha1.TagOwner, ps.Status.Owner, v1alpha1.TagDataHash)
}

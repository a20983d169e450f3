package emulator_test

import (
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

// TestVersionsAndDeleted: what a client wrote through the REST API (tags included) is what the
// inspection API shows, version by version, and a delete is a soft delete.
func TestVersionsAndDeleted(t *testing.T) {
	g := NewWithT(t)
	_, clientID, secret := secretIdentity(t)
	vault, url := newVault(t, emulator.RoleAssignment{Principal: clientID, Role: "Key Vault Secrets Officer"})
	c := secretsClient(t, url, secretCredential(t, clientID, secret))

	_, err := emu.Versions(vault, emulator.KindSecrets, "inspected")
	g.Expect(errors.Is(err, emulator.ErrNotFound)).To(BeTrue())
	for i, v := range []string{"one", "two"} {
		_, err := c.SetSecret(ctxT(t), "inspected", azsecrets.SetSecretParameters{Value: ptr(v), ContentType: ptr("text/plain"),
			Tags: map[string]*string{"n": ptr(string(rune('0' + i)))}}, nil)
		g.Expect(err).NotTo(HaveOccurred())
	}
	vs, err := emu.Versions(vault, emulator.KindSecrets, "inspected")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vs).To(HaveLen(2))
	g.Expect(vs[0].Value).To(Equal("one"))
	g.Expect(vs[1].Value).To(Equal("two"))
	g.Expect(vs[1].Tags).To(Equal(map[string]string{"n": "1"}))
	g.Expect(vs[1].ContentType).To(Equal("text/plain"))

	deleted, err := emu.Deleted(vault, emulator.KindSecrets, "inspected")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(deleted).To(BeFalse())
	_, err = c.DeleteSecret(ctxT(t), "inspected", nil)
	g.Expect(err).NotTo(HaveOccurred())
	deleted, err = emu.Deleted(vault, emulator.KindSecrets, "inspected")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(deleted).To(BeTrue())
	_, err = emu.Versions(vault, emulator.KindSecrets, "inspected")
	g.Expect(errors.Is(err, emulator.ErrNotFound)).To(BeTrue())
}

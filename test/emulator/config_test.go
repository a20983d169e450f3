package emulator_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

func TestParseConfigErrorsNameTheField(t *testing.T) {
	const ids = `
identities:
  - name: a
    clientId: 0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f
    clientSecrets: [x]
`
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown role", ids + `
vaults:
  - name: one
  - name: two
    roleAssignments:
      - principal: a
        role: Key Vault Reader
      - principal: a
        role: Key Vault Foo
`, `vaults[1].roleAssignments[1].role: unknown role "Key Vault Foo"`},
		{"unknown principal", ids + `
vaults:
  - name: one
    roleAssignments:
      - {principal: nobody, role: Key Vault Reader}
`, `vaults[0].roleAssignments[0].principal: no identity with name, clientId or objectId "nobody"`},
		{"tenant", `tenantId: contoso`, `tenantId: "contoso" is not a GUID`},
		{"client id", `
identities:
  - {name: a, clientId: nope}
`, `identities[0].clientId: "nope" is not a GUID`},
		{"vault name", `
vaults:
  - name: "x"
`, `vaults[0].name: "x" is not a valid vault name`},
		{"cloud", `
vaults:
  - {name: abc, cloud: Mars}
`, `vaults[0].cloud: unknown cloud "Mars"`},
		{"federated", `
identities:
  - name: a
    clientId: 0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f
    federatedCredentials:
      - {issuer: "https://i", subject: s, jwksURL: "https://example.com/keys"}
`, `identities[0].federatedCredentials[0].jwksURL: host "example.com" is not loopback`},
		{"certificate source", `
vaults:
  - name: abc
    certificates:
      - {name: c}
`, `vaults[0].certificates[0]: exactly one of generate, pem, pemFile, pfx or pfxFile is required`},
		{"key type", `
vaults:
  - name: abc
    keys:
      - {name: k, kty: oct}
`, `vaults[0].keys[0].kty: unknown key type "oct"`},
		{"limits", `
vaults:
  - name: abc
    limits: {mode: leaky}
`, `vaults[0].limits.mode: unknown mode "leaky"`},
		{"unknown field", `tenant: x`, `unknown field "tenant"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := emulator.ParseConfig([]byte(tc.yaml))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	g := NewWithT(t)
	cfg, err := emulator.ParseConfig([]byte(`
identities:
  - {name: a, clientId: 0B5F3D6E-1C2A-4E8B-9F7D-2A3C4B5D6E7F}
vaults:
  - name: Demo
    secrets:
      - {name: s, value: v}
      - name: multi
        versions: [{value: one}, {value: two, enabled: false}]
`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.TenantID).To(Equal(emulator.DefaultTenantID))
	g.Expect(cfg.Identities[0].ClientID).To(Equal("0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f"))
	g.Expect(cfg.Identities[0].ObjectID).To(MatchRegexp(`^[0-9a-f-]{36}$`))
	g.Expect(cfg.Vaults[0].Name).To(Equal("demo"))
	g.Expect(cfg.Vaults[0].Cloud).To(Equal("AzurePublic"))
	g.Expect(cfg.Vaults[0].Secrets[0].Versions).To(HaveLen(1))
	g.Expect(cfg.Vaults[0].Secrets[1].Versions).To(HaveLen(2))
}

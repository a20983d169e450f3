package keyvault

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseChallenge(t *testing.T) {
	g := NewWithT(t)
	const h = `Bearer authorization="https://login.microsoftonline.com/72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b", resource="https://vault.azure.net"`
	tro, err := parseChallenge(h, "demo.vault.azure.net", true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tro.Scopes).To(Equal([]string{"https://vault.azure.net/.default"}))
	g.Expect(tro.TenantID).To(Equal("72f9a8b1-6c3d-4e5f-8a9b-0c1d2e3f4a5b"))
	g.Expect(tro.EnableCAE).To(BeTrue())

	tro, err = parseChallenge(`Bearer authorization="https://login.microsoftonline.com/t1", scope="https://vault.azure.net/.default"`, "demo.vault.azure.net:443", true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tro.Scopes).To(Equal([]string{"https://vault.azure.net/.default"}))
	g.Expect(tro.TenantID).To(Equal("t1"))

	// A vault may not ask for a token of another service.
	_, err = parseChallenge(`Bearer authorization="https://login.microsoftonline.com/t1", resource="https://management.azure.com"`, "demo.vault.azure.net", true)
	g.Expect(err).To(MatchError(ContainSubstring("does not match the vault")))
	_, err = parseChallenge(`Bearer authorization="https://login.microsoftonline.com/t1", resource="https://evil.net"`, "demo.vault.azure.net", false)
	g.Expect(err).NotTo(HaveOccurred(), "without verification (tests addressing a vault by IP)")
	_, err = parseChallenge("", "demo.vault.azure.net", true)
	g.Expect(err).To(HaveOccurred())
	_, err = parseChallenge(`Bearer authorization="https://login.microsoftonline.com/t1"`, "demo.vault.azure.net", true)
	g.Expect(err).To(MatchError(ContainSubstring("names no resource")))
}

// FuzzParseChallenge: a WWW-Authenticate header comes from the network; parsing it never panics,
// and with verification a scope is only ever for a host the vault lies under.
func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net"`, "demo.vault.azure.net")
	f.Add(`Bearer scope="https://vault.azure.net/.default"`, "x.vault.azure.net:8443")
	f.Add(`Bearer resource=`, "")
	f.Add(`Bearer authorization="::", resource="https://vault.azure.net/"`, "a.vault.azure.net")
	f.Fuzz(func(t *testing.T, header, host string) {
		tro, err := parseChallenge(header, host, true)
		if err != nil {
			return
		}
		if len(tro.Scopes) != 1 || !strings.HasSuffix(tro.Scopes[0], "/.default") {
			t.Fatalf("scopes %v", tro.Scopes)
		}
	})
}

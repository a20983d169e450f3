package emulator

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// cloud is one Azure cloud: its login host, vault DNS suffix and Key Vault resource.
type cloud struct {
	name        string
	loginHost   string
	vaultSuffix string
	resource    string
}

var clouds = map[string]cloud{
	admin.CloudPublic:     {admin.CloudPublic, "login.microsoftonline.com", "vault.azure.net", "https://vault.azure.net"},
	admin.CloudChina:      {admin.CloudChina, "login.chinacloudapi.cn", "vault.azure.cn", "https://vault.azure.cn"},
	admin.CloudGovernment: {admin.CloudGovernment, "login.microsoftonline.us", "vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"},
}

// cloudForLoginHost returns the cloud whose token service answers at host.
func cloudForLoginHost(host string) (cloud, bool) {
	for _, c := range clouds {
		if c.loginHost == host {
			return c, true
		}
	}
	return cloud{}, false
}

// splitVaultHost returns the vault name and cloud of a vault host name.
func splitVaultHost(host string) (string, cloud, bool) {
	for _, c := range clouds {
		if name, ok := strings.CutSuffix(host, "."+c.vaultSuffix); ok && name != "" && !strings.Contains(name, ".") {
			return name, c, true
		}
	}
	return "", cloud{}, false
}

func vaultHost(name, cloudName string) string {
	c, ok := clouds[cloudName]
	if !ok {
		c = clouds[admin.CloudPublic]
	}
	return strings.ToLower(name) + "." + c.vaultSuffix
}

var curves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

// newVersionID returns a 32 lower-case hex character version id.
func newVersionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newGUID returns a random GUID.
func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b)
}

// derivedGUID returns a stable GUID derived from seed.
func derivedGUID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b)
}

func formatGUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

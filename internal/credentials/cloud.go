package credentials

import (
	"fmt"
	"net/url"
	"strings"
)

// Cloud names, as in the API's cloud field.
const (
	CloudAzurePublic       = "AzurePublic"
	CloudAzureChina        = "AzureChina"
	CloudAzureUSGovernment = "AzureUSGovernment"
	CloudCustom            = "Custom"
)

// EnvAuthorityHost overrides the Entra ID host of the public cloud (as in azidentity).
const EnvAuthorityHost = "AZURE_AUTHORITY_HOST"

// Cloud is where tokens are requested and which vaults they are for.
type Cloud struct {
	// Name is one of the Cloud* names.
	Name string
	// AuthorityHost is the Entra ID endpoint, with a trailing slash.
	AuthorityHost string
	// VaultSuffix is the DNS suffix of the cloud's vaults, without a leading dot.
	VaultSuffix string
}

// KeyVaultScope is the OAuth scope of Key Vault in this cloud, as Key Vault's own challenge
// names it (https://vault.azure.net/.default in the public cloud).
func (c Cloud) KeyVaultScope() string {
	return "https://" + c.VaultSuffix + "/.default"
}

var knownClouds = map[string]Cloud{
	CloudAzurePublic:       {Name: CloudAzurePublic, AuthorityHost: "https://login.microsoftonline.com/", VaultSuffix: "vault.azure.net"},
	CloudAzureChina:        {Name: CloudAzureChina, AuthorityHost: "https://login.chinacloudapi.cn/", VaultSuffix: "vault.azure.cn"},
	CloudAzureUSGovernment: {Name: CloudAzureUSGovernment, AuthorityHost: "https://login.microsoftonline.us/", VaultSuffix: "vault.usgovcloudapi.net"},
}

// CloudSpec is the cloud part of a connection spec.
type CloudSpec struct {
	// Name is the cloud field; empty means: follow the vault URL's DNS suffix.
	Name string
	// AuthorityHost and VaultSuffix describe a Custom cloud.
	AuthorityHost string
	VaultSuffix   string
}

// ResolveCloud returns the cloud of a vault. With no name, the cloud follows from the vault's
// DNS suffix (the public cloud for anything not sovereign, so private DNS names keep working).
// With a name, the vault's host must end with that cloud's suffix: a token of one cloud is never
// sent to a vault of another. The public cloud's authority can be overridden with
// AZURE_AUTHORITY_HOST (getenv; nil means no override).
func ResolveCloud(spec CloudSpec, vaultURL string, getenv func(string) string) (Cloud, error) {
	u, err := url.Parse(strings.TrimSpace(vaultURL))
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return Cloud{}, fmt.Errorf("%q is not an https URL with a host", vaultURL)
	}
	host := strings.ToLower(u.Hostname())
	var c Cloud
	switch spec.Name {
	case "":
		c = knownClouds[CloudAzurePublic]
		for _, k := range []string{CloudAzureChina, CloudAzureUSGovernment} {
			if strings.HasSuffix(host, "."+knownClouds[k].VaultSuffix) {
				c = knownClouds[k]
			}
		}
	case CloudCustom:
		if spec.AuthorityHost == "" || spec.VaultSuffix == "" {
			return Cloud{}, fmt.Errorf("cloud Custom needs customCloud.authorityHost and customCloud.vaultDNSSuffix")
		}
		a, err := url.Parse(spec.AuthorityHost)
		if err != nil || a.Scheme != "https" || a.Host == "" {
			return Cloud{}, fmt.Errorf("customCloud.authorityHost %q is not an https URL", spec.AuthorityHost)
		}
		c = Cloud{Name: CloudCustom, AuthorityHost: withSlash(spec.AuthorityHost),
			VaultSuffix: strings.Trim(strings.ToLower(spec.VaultSuffix), ".")}
	default:
		known, ok := knownClouds[spec.Name]
		if !ok {
			return Cloud{}, fmt.Errorf("unknown cloud %q: use AzurePublic, AzureChina, AzureUSGovernment or Custom", spec.Name)
		}
		c = known
	}
	if spec.Name != "" && !strings.HasSuffix(host, "."+c.VaultSuffix) {
		return Cloud{}, fmt.Errorf("the vault %s is not a vault of cloud %s: its host must end with .%s", host, c.Name, c.VaultSuffix)
	}
	if c.Name == CloudAzurePublic && getenv != nil {
		if h := strings.TrimSpace(getenv(EnvAuthorityHost)); h != "" {
			c.AuthorityHost = withSlash(h)
		}
	}
	return c, nil
}

func withSlash(s string) string {
	if strings.HasSuffix(s, "/") {
		return s
	}
	return s + "/"
}

// CheckAuthority refuses a Custom cloud whose authority host is neither one of the known
// clouds' nor listed in allowed (host names, case-insensitive). A Custom cloud is named by
// whoever may create a VaultSecret or VaultConnection; without this check they could have the
// operator send their namespace's ServiceAccount tokens or client secrets to any host.
func CheckAuthority(c Cloud, allowed []string) error {
	if c.Name != CloudCustom {
		return nil
	}
	u, err := url.Parse(c.AuthorityHost)
	if err != nil {
		return &Error{Kind: ErrAuthorityNotAllowed, Detail: "customCloud.authorityHost is not a URL"}
	}
	host := strings.ToLower(u.Hostname())
	for _, k := range knownClouds {
		if a, err := url.Parse(k.AuthorityHost); err == nil && a.Hostname() == host {
			return nil
		}
	}
	for _, h := range allowed {
		if strings.EqualFold(strings.TrimSpace(h), host) {
			return nil
		}
	}
	return &Error{Kind: ErrAuthorityNotAllowed, Detail: fmt.Sprintf("customCloud.authorityHost %s is not an authority host this operator trusts", host)}
}

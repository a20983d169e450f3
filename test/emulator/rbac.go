package emulator

import (
	"path"
	"strings"
)

// role is a Key Vault data-plane role: the data actions it allows, with "*" wildcards.
type role struct {
	name    string
	actions []string
}

// roles are the built-in Key Vault roles, keyed by lower-case name.
var roles = func() map[string]role {
	m := map[string]role{}
	for _, r := range []role{
		{"Key Vault Administrator", []string{"*"}},
		{"Key Vault Reader", []string{"*/read", "*/readMetadata"}},
		{"Key Vault Secrets Officer", []string{"secrets/*", "deletedsecrets/*"}},
		{"Key Vault Secrets User", []string{"secrets/getSecret", "secrets/readMetadata"}},
		{"Key Vault Certificates Officer", []string{"certificates/*", "deletedcertificates/*", "secrets/getSecret", "secrets/readMetadata", "keys/read", "keys/readMetadata"}},
		{"Key Vault Certificate User", []string{"certificates/read", "certificates/readMetadata", "secrets/getSecret", "secrets/readMetadata", "keys/read", "keys/readMetadata"}},
		{"Key Vault Crypto Officer", []string{"keys/*", "deletedkeys/*"}},
		{"Key Vault Crypto User", []string{"keys/read", "keys/readMetadata", "keys/crypto"}},
	} {
		m[strings.ToLower(r.name)] = r
	}
	return m
}()

// allows reports whether the role grants a data action like "secrets/getSecret".
func (r role) allows(action string) bool {
	for _, a := range r.actions {
		if a == "*" || a == action {
			return true
		}
		if ok, _ := path.Match(a, action); ok {
			return true
		}
	}
	return false
}

// longAction is the Azure RBAC name of a data action, for error messages.
func longAction(action string) string {
	kind, verb, _ := strings.Cut(action, "/")
	switch verb {
	case "read", "write", "delete":
		return "Microsoft.KeyVault/vaults/" + kind + "/" + verb
	}
	return "Microsoft.KeyVault/vaults/" + kind + "/" + verb + "/action"
}

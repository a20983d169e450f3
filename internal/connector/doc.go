// Package connector is vaultsync's credential backend. It resolves the connection of a
// VaultSecret or VaultPushSecret (an inline vault, a VaultConnection of its namespace, or a
// ClusterVaultConnection that allows the namespace), turns its auth spec into a cached Entra ID
// credential (internal/credentials) and hands out a cached Key Vault client (internal/keyvault).
// It keeps what that needs between reconciles: ServiceAccounts read at most once per refresh,
// the data of credential Secrets read again only when their resourceVersion changed, the
// credential each shared connection uses, and the metadata-only watches of the Secrets it reads
// by name, which wake the controllers (SecretSource).
//
// It decides nothing about VaultSecrets or their Secrets: the reconcilers in controllers do, and
// they state what they use of the Connector in their own interfaces.
package connector

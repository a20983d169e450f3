// Package emulatortest holds integration tests of internal/keyvault and internal/credentials
// against the Key Vault and Entra ID emulator (test/emulator), reached through its loopback proxy
// with production host names. It has no non-test code.
package emulatortest

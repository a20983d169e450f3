// Command setget sets and reads a secret at https://demo.vault.azure.net through a running kv-emulator,
// using the unmodified azsecrets client and a ClientSecretCredential. Run it with the emulator's
// environment (only HTTPS_PROXY and SSL_CERT_FILE are needed):
//
//	bin/kv-emulator --config test/emulator/config.example.yaml --state-dir /tmp/kv-emulator &
//	. /tmp/kv-emulator/env
//	go run ./test/emulator/examples/setget
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Values of test/emulator/config.example.yaml.
const (
	tenantID     = "8d1c7e4a-3f2b-4a6c-9e0d-5b7a1c2e3f40"
	clientID     = "0b5f3d6e-1c2a-4e8b-9f7d-2a3c4b5d6e7f"
	clientSecret = "demo-client-secret"
	vaultURL     = "https://demo.vault.azure.net"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "setget:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Getenv("HTTPS_PROXY") == "" || os.Getenv("SSL_CERT_FILE") == "" {
		return fmt.Errorf("set HTTPS_PROXY and SSL_CERT_FILE from the emulator's env file first")
	}
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, clientSecret, nil)
	if err != nil {
		return err
	}
	client, err := azsecrets.NewClient(vaultURL, cred, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := fmt.Sprintf("hello from setget at %s", time.Now().UTC().Format(time.RFC3339))
	set, err := client.SetSecret(ctx, "setget-example", azsecrets.SetSecretParameters{Value: &value}, nil)
	if err != nil {
		return err
	}
	got, err := client.GetSecret(ctx, "setget-example", "", nil)
	if err != nil {
		return err
	}
	if *got.Value != value {
		return fmt.Errorf("read %d bytes back, want the %d bytes written", len(*got.Value), len(value))
	}
	fmt.Printf("set and read %s (version %s)\n", *set.ID, set.ID.Version())
	return nil
}

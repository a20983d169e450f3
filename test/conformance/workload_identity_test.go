// Package conformance checks the emulator against the real Azure SDK with
// credentials that need the local control plane: workload identity with
// service-account tokens minted by a real kube-apiserver.
package conformance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/vaultsync/vaultsync/test/controlplane"
	"github.com/vaultsync/vaultsync/test/emulator"
	"github.com/vaultsync/vaultsync/test/testenv/inprocess"
)

const (
	tenant   = "3c2f1e0d-9b8a-4c7d-8e6f-5a4b3c2d1e0f"
	clientID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	audience = "api://AzureADTokenExchange"
)

var (
	cp  *controlplane.ControlPlane
	emu *emulator.Emulator
	cs  *kubernetes.Clientset
	tmp string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	tmp, err = os.MkdirTemp("", "vaultsync-conformance-")
	must(err)
	defer os.RemoveAll(tmp)
	// The control plane (no CRDs, no kube-controller-manager) and the
	// emulator, both in this process, before any HTTP client exists: the SDK
	// reads the proxy and CA once.
	env, err := inprocess.Start(inprocess.Options{NoCRDs: true, EmulatorConfig: emulatorConfig})
	must(err)
	defer env.Close()
	emu = env.Emu
	return m.Run()
}

// emulatorConfig creates the ServiceAccounts and returns the emulator's
// directory: the emulator fetches the issuer's keys from the kube-apiserver
// itself (jwksURL with the cluster CA and a bearer token), as Entra ID does
// from a public OIDC issuer.
func emulatorConfig(e *inprocess.Env) (*emulator.Config, error) {
	ctx := context.Background()
	cp = e.CP
	var err error
	if cs, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return nil, err
	}
	for _, sa := range []string{"app", "other", "jwks-reader"} {
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	caFile := filepath.Join(tmp, "cluster-ca.pem")
	if err := os.WriteFile(caFile, cp.Config.CAData, 0o600); err != nil {
		return nil, err
	}
	readerToken := filepath.Join(tmp, "jwks-reader.token")
	if err := os.WriteFile(readerToken, []byte(mint("jwks-reader", e.Issuer)), 0o600); err != nil {
		return nil, err
	}
	cfg := &emulator.Config{
		TenantID: tenant,
		Identities: []emulator.Identity{{
			Name: "wi-app", ClientID: clientID,
			FederatedCredentials: []emulator.FederatedCredential{{
				Issuer: e.Issuer, Subject: "system:serviceaccount:default:app", Audience: audience,
				// jwks_uri names the apiserver's advertised address; fetch the
				// same document over loopback.
				JWKSURL: strings.TrimSuffix(cp.Config.Host, "/") + "/openid/v1/jwks", CAFile: caFile, BearerTokenFile: readerToken,
			}},
		}},
		Vaults: []emulator.Vault{{
			Name:            "wi-vault",
			RoleAssignments: []emulator.RoleAssignment{{Principal: "wi-app", Role: "Key Vault Secrets User"}},
			Secrets:         []emulator.Secret{{Name: "greeting", SecretVersion: emulator.SecretVersion{Value: "hello from the emulator"}}},
		}},
	}
	return cfg, cfg.Validate()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// mint asks the kube-apiserver for a token of a ServiceAccount in "default".
func mint(sa, aud string) string {
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	must(err)
	return tr.Status.Token
}

// getGreeting reads the secret with WorkloadIdentityCredential, the SDK's
// own workload identity credential, reading the token from a file as it
// does in a pod.
func getGreeting(t *testing.T, token string) (string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientID: clientID, TenantID: tenant, TokenFilePath: file,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, err := azsecrets.NewClient(emu.VaultURL("wi-vault"), cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.GetSecret(ctx, "greeting", "", nil)
	if err != nil {
		return "", err
	}
	return *resp.Value, nil
}

func TestWorkloadIdentityWithKubeAPIServerTokens(t *testing.T) {
	g := NewWithT(t)
	since := time.Now()
	v, err := getGreeting(t, mint("app", audience))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v).To(Equal("hello from the emulator"))
	g.Expect(emu.Count(emulator.LogFilter{Service: "entra", Operation: "Token", AuthMethod: "federated", Status: 200, Since: since})).To(Equal(1))
}

func TestWorkloadIdentityRejectsOtherSubjectsAndAudiences(t *testing.T) {
	for name, tc := range map[string]struct{ token, code string }{
		// Entra ID names the claim: the subject (700213), the audience (700212).
		"another ServiceAccount": {mint("other", audience), "AADSTS700213: No matching federated identity record found for presented assertion subject"},
		"another audience":       {mint("app", "api://SomethingElse"), "AADSTS700212: No matching federated identity record found for presented assertion audience 'api://SomethingElse'"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := getGreeting(t, tc.token)
			var authErr *azidentity.AuthenticationFailedError
			g.Expect(errors.As(err, &authErr)).To(BeTrue(), "got %v", err)
			g.Expect(authErr.Error()).To(ContainSubstring(tc.code))
		})
	}
}

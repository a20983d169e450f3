package controllers_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/test/emulator"
)

var _ = Describe("Authentication methods", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("shares a service principal through a VaultConnection: one token for many VaultSecrets, a new credential when its Secret changes", func() {
		first, second := "sp-first-"+ns, "sp-second-"+ns
		rememberValue(first)
		rememberValue(second)
		identity := "sp-" + ns
		clientID := addIdentity(emulator.Identity{Name: identity, ClientSecrets: []string{first, second}}, vaultName)
		setVaultSecret(vaultName, "shared-"+ns, "shared-value-"+ns)
		start := time.Now()

		createCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte(first)})
		conn := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prod-kv"}, Spec: v1alpha1.VaultConnectionSpec{
			URL: vaultURL,
			Auth: v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: tenantID, ClientID: clientID,
				ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "sp-cred", Key: "client-secret"}}},
			Probe: &v1alpha1.ConnectionProbe{Name: "shared-" + ns},
		}}
		Expect(k8s.Create(ctx, conn)).To(Succeed())
		c := expectConnection(conn, "Connected")
		Expect(c.Message).To(ContainSubstring(`secret "shared-` + ns + `" read`))
		Expect(conn.Status.Identity).To(ContainSubstring(clientID))

		for i := range 3 {
			createVSExact(ns, fmt.Sprintf("app-%d", i), vsVia("", "prod-kv", "v", "shared-"+ns))
		}
		for i := range 3 {
			expectReady(ns, fmt.Sprintf("app-%d", i))
			Expect(getSecret(ns, fmt.Sprintf("app-%d", i)).Data["v"]).To(Equal([]byte("shared-value-" + ns)))
		}
		Expect(tokenRequests(clientID, start)).To(Equal(1), "the connection's preflight and three VaultSecrets share one credential and one token")
		Expect(getVS(ns, "app-0").Status.ConnectionVersion).NotTo(BeEmpty())
		Expect(getVS(ns, "app-0").Status.Conditions[0].Message).To(ContainSubstring(`VaultConnection "prod-kv"`))

		// Rotation: the Secret's new material gets a new credential (a new token request),
		// and every VaultSecret of the connection syncs again.
		before := getVS(ns, "app-1")
		rotated := time.Now()
		updateCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte(second)})
		for i := range 3 {
			Eventually(func() string { return getVS(ns, fmt.Sprintf("app-%d", i)).Status.ConnectionVersion }, timeout).
				ShouldNot(Equal(before.Status.ConnectionVersion))
			expectReady(ns, fmt.Sprintf("app-%d", i))
		}
		Eventually(func() int { return tokenRequests(clientID, rotated) }, timeout).Should(Equal(1))
		Expect(azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Object: "shared-" + ns}, rotated)).To(BeNumerically(">=", 1))

		// A change of the connection's spec syncs its VaultSecrets again (the version is recorded
		// by the sync itself; the read may be served by the coalescer, not the vault).
		before = getVS(ns, "app-2")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn)).To(Succeed())
		patch := client.MergeFrom(conn.DeepCopy())
		conn.Spec.Probe = nil
		Expect(k8s.Patch(ctx, conn, patch)).To(Succeed())
		Eventually(func() string { return getVS(ns, "app-2").Status.ConnectionVersion }, timeout).ShouldNot(Equal(before.Status.ConnectionVersion))
		Expect(expectConnection(conn, "Connected").Message).NotTo(ContainSubstring("read"))

		// A wrong secret: the connection and its VaultSecrets say so; the data stays.
		wrong := "wrong-secret-" + ns
		rememberValue(wrong)
		updateCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte(wrong)})
		c = expectConnection(conn, "InvalidClientSecret")
		Expect(c.Message).To(ContainSubstring("AADSTS7000215"))
		expectNotReady(ns, "app-0", "InvalidClientSecret")
		Expect(getSecret(ns, "app-0").Data["v"]).To(Equal([]byte("shared-value-" + ns)))

		// Deleting the Secret drops the credential: the same material, recreated, needs a new token.
		updateCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte(second)})
		expectConnection(conn, "Connected")
		expectReady(ns, "app-0")
		Expect(k8s.Delete(ctx, getSecret(ns, "sp-cred"))).To(Succeed())
		expectConnection(conn, "CredentialSecretNotFound")
		expectNotReady(ns, "app-2", "CredentialSecretNotFound")
		recreated := time.Now()
		createCredentialSecret(ns, "sp-cred", map[string][]byte{"client-secret": []byte(second)})
		expectConnection(conn, "Connected")
		expectReady(ns, "app-2")
		Expect(tokenRequests(clientID, recreated)).To(Equal(1))
	})

	It("signs in with client certificates in PEM and in a password-protected PFX", func() {
		key, cert, certPEM := selfSignedRSA("vaultsync-" + ns)
		identity := "cert-" + ns
		clientID := addIdentity(emulator.Identity{Name: identity, Certificates: []emulator.ClientCertificate{{PEM: string(certPEM)}}}, vaultName)
		setVaultSecret(vaultName, "cert-read-"+ns, "by-certificate-"+ns)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		Expect(err).NotTo(HaveOccurred())
		bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), certPEM...)
		rememberValue("pfx-password-" + ns)
		pfx, err := pkcs12.Modern.Encode(key, cert, nil, "pfx-password-"+ns)
		Expect(err).NotTo(HaveOccurred())
		createCredentialSecret(ns, "cert-pem", map[string][]byte{"tls.pem": bundle})
		createCredentialSecret(ns, "cert-pfx", map[string][]byte{"cert.pfx": pfx, "password": []byte("pfx-password-" + ns)})

		sp := func(ref, pw *v1alpha1.SecretKeyRef) v1alpha1.VaultAuth {
			return v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: tenantID, ClientID: clientID,
				ClientCertificateRef: ref, PasswordRef: pw}}
		}
		createVSExact(ns, "pem", vsInline(vaultURL, sp(&v1alpha1.SecretKeyRef{Name: "cert-pem", Key: "tls.pem"}, nil), "v", "cert-read-"+ns))
		conn := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pfx"}, Spec: v1alpha1.VaultConnectionSpec{
			URL: vaultURL, Auth: sp(&v1alpha1.SecretKeyRef{Name: "cert-pfx", Key: "cert.pfx"}, &v1alpha1.SecretKeyRef{Name: "cert-pfx", Key: "password"}),
		}}
		Expect(k8s.Create(ctx, conn)).To(Succeed())
		createVSExact(ns, "pfx", vsVia(v1alpha1.KindVaultConnection, "pfx", "v", "cert-read-"+ns))
		// Without its password the PFX cannot be opened: said before anything reaches Entra ID.
		createVSExact(ns, "no-password", vsInline(vaultURL, sp(&v1alpha1.SecretKeyRef{Name: "cert-pfx", Key: "cert.pfx"}, nil), "v", "cert-read-"+ns))

		expectReady(ns, "pem")
		expectReady(ns, "pfx")
		expectConnection(conn, "Connected")
		Expect(getSecret(ns, "pfx").Data["v"]).To(Equal([]byte("by-certificate-" + ns)))
		Expect(azureCalls(emulator.LogFilter{Service: "entra", Operation: "Token", Identity: clientID, AuthMethod: "client_certificate", Status: 200}, time.Time{})).
			To(Equal(2), "one token per distinct credential: the PEM and the PFX material")
		c := expectNotReady(ns, "no-password", "ClientCertificateUnusable")
		Expect(c.Message).To(ContainSubstring("cert-pfx"))
		Expect(c.Message).To(ContainSubstring("password"))
	})

	It("uses a managed identity through IDENTITY_ENDPOINT only, offered by a ClusterVaultConnection", func() {
		// azidentity picks the App Service source from these variables; without them it would
		// ask the instance metadata service at 169.254.169.254, which no test may reach.
		expectLoopback(os.Getenv("IDENTITY_ENDPOINT"))
		Expect(os.Getenv("IDENTITY_HEADER")).NotTo(BeEmpty())

		resourceID := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-" + ns
		clientID := addIdentity(emulator.Identity{Name: "mi-" + ns, ManagedIdentity: &emulator.ManagedIdentity{Type: "UserAssigned", ResourceID: resourceID}}, vaultName)
		setVaultSecret(vaultName, "mi-read-"+ns, "by-managed-identity-"+ns)
		start := time.Now()
		byClient := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "mi-client-" + ns}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: vaultURL, Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{ClientID: clientID}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{ns}},
		}}
		byResource := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "mi-resource-" + ns}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: vaultURL, Auth: v1alpha1.VaultAuth{ManagedIdentity: &v1alpha1.ManagedIdentityAuth{ResourceID: resourceID}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		}}
		Expect(k8s.Create(ctx, byClient)).To(Succeed())
		Expect(k8s.Create(ctx, byResource)).To(Succeed())
		DeferCleanup(func() {
			Expect(k8s.Delete(ctx, byClient)).To(Succeed())
			Expect(k8s.Delete(ctx, byResource)).To(Succeed())
		})
		createVSExact(ns, "by-client", vsVia(v1alpha1.KindClusterVaultConnection, byClient.Name, "v", "mi-read-"+ns))
		createVSExact(ns, "by-resource", vsVia(v1alpha1.KindClusterVaultConnection, byResource.Name, "v", "mi-read-"+ns))
		expectReady(ns, "by-client")
		expectReady(ns, "by-resource")
		expectConnection(byClient, "Connected")
		Expect(expectConnection(byResource, "Connected").Message).To(ContainSubstring("user-assigned"))
		Expect(getSecret(ns, "by-resource").Data["v"]).To(Equal([]byte("by-managed-identity-" + ns)))
		Expect(azureCalls(emulator.LogFilter{Service: "managedidentity", Identity: clientID, Status: 200}, start)).To(Equal(2), "one token per credential")
		Expect(tokenRequests(clientID, start)).To(BeZero(), "a managed identity never asks Entra ID's token endpoint")
	})

	It("uses the operator's own workload identity from its environment", func() {
		createServiceAccount(ns, "vaultsync", "")
		clientID := addIdentity(emulator.Identity{Name: "operator-" + ns}, vaultName)
		federate("operator-"+ns, ns, "vaultsync")
		setVaultSecret(vaultName, "op-read-"+ns, "by-operator-"+ns)

		// What the Azure Workload Identity webhook gives the operator's pod.
		cs, err := kubernetes.NewForConfig(cp.Config)
		Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "vaultsync", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{tokenAudience}, ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		tokenFile := filepath.Join(GinkgoT().TempDir(), "azure-identity-token")
		Expect(os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600)).To(Succeed())
		for k, v := range map[string]string{"AZURE_CLIENT_ID": clientID, "AZURE_TENANT_ID": tenantID, "AZURE_FEDERATED_TOKEN_FILE": tokenFile} {
			Expect(os.Setenv(k, v)).To(Succeed())
			DeferCleanup(os.Unsetenv, k)
		}

		cvc := &v1alpha1.ClusterVaultConnection{ObjectMeta: metav1.ObjectMeta{Name: "operator-" + ns}, Spec: v1alpha1.ClusterVaultConnectionSpec{
			URL: vaultURL, Auth: v1alpha1.VaultAuth{OperatorIdentity: &v1alpha1.OperatorIdentityAuth{}},
			AllowedNamespaces: v1alpha1.AllowedNamespaces{Names: []string{ns}},
		}}
		Expect(k8s.Create(ctx, cvc)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, cvc)).To(Succeed()) })
		createVSExact(ns, "op", vsVia(v1alpha1.KindClusterVaultConnection, cvc.Name, "v", "op-read-"+ns))
		expectReady(ns, "op")
		expectConnection(cvc, "Connected")
		Expect(getSecret(ns, "op").Data["v"]).To(Equal([]byte("by-operator-" + ns)))
		Expect(azureCalls(emulator.LogFilter{Service: "entra", Operation: "Token", Identity: clientID, AuthMethod: "federated", Status: 200}, time.Time{})).To(Equal(1))
	})

	It("uses the Azure CLI only with --dev, through the az found on PATH", func() {
		identity := "cli-" + ns
		addIdentity(emulator.Identity{Name: identity}, vaultName)
		setVaultSecret(vaultName, "cli-read-"+ns, "by-cli-"+ns)
		tok, err := emu.MintToken(emulator.TokenRequest{Principal: identity})
		Expect(err).NotTo(HaveOccurred())
		bin := GinkgoT().TempDir()
		calls := filepath.Join(bin, "calls")
		script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nprintf '%%s' '{\"accessToken\":\"%s\",\"expires_on\":%d}'\n", calls, tok.AccessToken, tok.ExpiresOn)
		Expect(os.WriteFile(filepath.Join(bin, "az"), []byte(script), 0o755)).To(Succeed())
		DeferCleanup(os.Setenv, "PATH", os.Getenv("PATH"))
		Expect(os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))).To(Succeed())

		cs, err := kubernetes.NewForConfig(cp.Config)
		Expect(err).NotTo(HaveOccurred())
		newConnector := func(dev bool) *connector.Connector {
			return &connector.Connector{Live: k8s, Tokens: credentials.NewKubeTokenRequester(cs),
				Credentials: credentials.NewCache(0), Clients: keyvault.NewClientCache(0, &keyvault.Options{}), Dev: dev}
		}
		vs := &v1alpha1.VaultSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cli"},
			Spec: vsInline(vaultURL, v1alpha1.VaultAuth{AzureCLI: &v1alpha1.AzureCLIAuth{}}, "v", "cli-read-"+ns)}

		// Without --dev (how the operator runs in a cluster): refused, nothing runs.
		start := time.Now()
		_, err = newConnector(false).For(ctx, vs)
		Expect(credentials.Reason(err)).To(Equal("AuthMethodNotAllowed"))
		Expect(err.Error()).To(ContainSubstring("--dev"))
		Expect(calls).NotTo(BeAnExistingFile())

		// With --dev: the CLI's token reads the vault.
		v, err := newConnector(true).For(ctx, vs)
		Expect(err).NotTo(HaveOccurred())
		for range 3 {
			s, err := v.GetSecret(context.WithoutCancel(ctx), "cli-read-"+ns, "")
			Expect(err).NotTo(HaveOccurred())
			Expect(s.Value).To(Equal("by-cli-" + ns))
		}
		raw, err := os.ReadFile(calls)
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Count(string(raw), "account get-access-token")).To(Equal(1), "the CLI's token is kept until it nears expiry")
		Expect(string(raw)).To(ContainSubstring("--resource https://vault.azure.net"))
		Expect(azureCalls(emulator.LogFilter{Service: "keyvault", Operation: "GetSecret", Identity: identity, Status: 200}, start)).To(Equal(3))

		// The manager of this suite runs without --dev.
		createVSExact(ns, "cli", vs.Spec)
		c := expectNotReady(ns, "cli", "AuthMethodNotAllowed")
		Expect(c.Message).To(ContainSubstring("make run"))
	})

	It("reaches a Custom cloud through its own authority host, and refuses a vault outside the cloud", func() {
		gov := "gov-" + ns
		Expect(emu.AddVault(emulator.Vault{Name: gov, Cloud: "AzureUSGovernment"})).To(Succeed())
		secret := "custom-cloud-secret-" + ns
		rememberValue(secret)
		clientID := addIdentity(emulator.Identity{Name: "custom-" + ns, ClientSecrets: []string{secret}}, gov)
		setVaultSecret(gov, "custom-read", "in-a-custom-cloud-"+ns)
		govURL := emu.VaultURL(gov)
		Expect(govURL).To(HaveSuffix(".vault.usgovcloudapi.net"))
		createCredentialSecret(ns, "custom-cred", map[string][]byte{"secret": []byte(secret)})
		auth := v1alpha1.VaultAuth{ServicePrincipal: &v1alpha1.ServicePrincipalAuth{TenantID: tenantID, ClientID: clientID,
			ClientSecretRef: &v1alpha1.SecretKeyRef{Name: "custom-cred", Key: "secret"}}}
		custom := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "custom"}, Spec: v1alpha1.VaultConnectionSpec{
			URL: govURL, Auth: auth, Cloud: v1alpha1.CloudCustom,
			CustomCloud: &v1alpha1.CustomCloud{AuthorityHost: "https://login.microsoftonline.us/", VaultDNSSuffix: "vault.usgovcloudapi.net"},
		}}
		wrongCloud := &v1alpha1.VaultConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wrong-cloud"}, Spec: v1alpha1.VaultConnectionSpec{
			URL: govURL, Auth: auth, Cloud: v1alpha1.CloudAzureChina,
		}}
		Expect(k8s.Create(ctx, custom)).To(Succeed())
		Expect(k8s.Create(ctx, wrongCloud)).To(Succeed())
		createVSExact(ns, "custom", vsVia("", "custom", "v", "custom-read"))
		expectReady(ns, "custom")
		Expect(getSecret(ns, "custom").Data["v"]).To(Equal([]byte("in-a-custom-cloud-" + ns)))
		tokens := emu.Requests(emulator.LogFilter{Service: "entra", Operation: "Token", Identity: clientID})
		Expect(tokens).NotTo(BeEmpty())
		for _, t := range tokens {
			Expect(t.Host).To(HavePrefix("login.microsoftonline.us"), "tokens come from the custom authority")
		}
		c := expectConnection(wrongCloud, "InvalidSpec")
		Expect(c.Message).To(ContainSubstring(".vault.azure.cn"))
		Expect(len(emu.Requests(emulator.LogFilter{Service: "entra", Operation: "Token", Identity: clientID}))).To(Equal(len(tokens)))
	})
})

package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/credentials"
)

// place is where an auth spec lives; it decides which methods and references are allowed.
type place int

const (
	placeInline     place = iota // spec.vault of a VaultSecret
	placeNamespaced              // a VaultConnection
	placeCluster                 // a ClusterVaultConnection
)

// connection is a resolved vault, identity and cloud, whatever object it came from.
type connection struct {
	Place place
	// Kind and Name name the shared connection ("" for an inline vault).
	Kind v1alpha1.ConnectionKind
	Name string
	// Namespace is where ServiceAccounts and Secrets are looked up: the namespace of the
	// VaultSecret or VaultConnection ("" for a ClusterVaultConnection).
	Namespace string
	URL       string
	Auth      *v1alpha1.VaultAuth
	Cloud     credentials.CloudSpec
	Probe     *v1alpha1.ConnectionProbe
	// Object is the connection object (nil for an inline vault); its UID and generation are
	// part of the connection version.
	Object metav1.Object
	// Allowed is false when a ClusterVaultConnection does not allow the VaultSecret's namespace.
	Allowed bool
}

// field names a field of the connection's spec in messages.
func (c *connection) field(name string) string {
	if c.Place == placeInline {
		return "spec.vault." + name
	}
	return fmt.Sprintf("%s %q: spec.%s", c.Kind, c.Name, name)
}

func (c *connection) owner() string { return connectionOwner(c.Kind, c.Namespace, c.Name) }

func connectionOwner(kind v1alpha1.ConnectionKind, namespace, name string) string {
	if kind == v1alpha1.KindClusterVaultConnection {
		namespace = ""
	}
	return string(kind) + "/" + namespace + "/" + name
}

func cloudSpec(name v1alpha1.CloudName, custom *v1alpha1.CustomCloud) credentials.CloudSpec {
	s := credentials.CloudSpec{Name: string(name)}
	if custom != nil {
		s.AuthorityHost, s.VaultSuffix = custom.AuthorityHost, custom.VaultDNSSuffix
	}
	return s
}

// vaultConnection is the connection of a VaultConnection object.
func vaultConnection(vc *v1alpha1.VaultConnection) *connection {
	return &connection{Place: placeNamespaced, Kind: v1alpha1.KindVaultConnection, Name: vc.Name, Namespace: vc.Namespace,
		URL: vc.Spec.URL, Auth: &vc.Spec.Auth, Cloud: cloudSpec(vc.Spec.Cloud, vc.Spec.CustomCloud), Probe: vc.Spec.Probe,
		Object: vc, Allowed: true}
}

// clusterVaultConnection is the connection of a ClusterVaultConnection object.
func clusterVaultConnection(cvc *v1alpha1.ClusterVaultConnection) *connection {
	return &connection{Place: placeCluster, Kind: v1alpha1.KindClusterVaultConnection, Name: cvc.Name,
		URL: cvc.Spec.URL, Auth: &cvc.Spec.Auth, Cloud: cloudSpec(cvc.Spec.Cloud, cvc.Spec.CustomCloud), Probe: cvc.Spec.Probe,
		Object: cvc, Allowed: true}
}

// resolve finds the connection of a VaultSecret. A VaultConnection is always looked up in the
// VaultSecret's own namespace; a ClusterVaultConnection must allow that namespace. Refusals are
// *RefusedError and happen before any credential is built.
func (c *Connector) resolve(ctx context.Context, vs *v1alpha1.VaultSecret) (*connection, error) {
	return c.resolveRef(ctx, vs.Namespace, vs.Spec.Vault, vs.Spec.ConnectionRef)
}

// resolveRef finds the connection of an object of namespace ns (a VaultSecret or a
// VaultPushSecret) from its inline vault or its connectionRef, with the rules of resolve.
func (c *Connector) resolveRef(ctx context.Context, ns string, v *v1alpha1.VaultRef, ref *v1alpha1.ConnectionRef) (*connection, error) {
	if ref == nil {
		if v == nil {
			return nil, fmt.Errorf("%w: set spec.vault or spec.connectionRef", ErrInvalidSpec)
		}
		return &connection{Place: placeInline, Namespace: ns, URL: v.URL, Auth: &v.Auth,
			Cloud: cloudSpec(v.Cloud, v.CustomCloud), Allowed: true}, nil
	}
	if c.Client == nil {
		return nil, fmt.Errorf("%w: spec.connectionRef is not supported by this operator instance", ErrInvalidSpec)
	}
	switch ref.KindOrDefault() {
	case v1alpha1.KindVaultConnection:
		vc := &v1alpha1.VaultConnection{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, vc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &RefusedError{Reason: ReasonConnectionNotFound, Message: fmt.Sprintf(
					"VaultConnection %q does not exist in namespace %q; a VaultSecret or VaultPushSecret can only use VaultConnections of its own namespace "+
						"(create it here, or use a ClusterVaultConnection that allows this namespace)", ref.Name, ns)}
			}
			return nil, fmt.Errorf("reading VaultConnection %s/%s: %w", ns, ref.Name, err)
		}
		return vaultConnection(vc), nil
	case v1alpha1.KindClusterVaultConnection:
		if !c.ClusterConnections {
			return nil, &RefusedError{Reason: ReasonClusterConnectionsDisabled, Message: fmt.Sprintf(
				"ClusterVaultConnection %q cannot be used: this operator runs with --cluster-connections=false "+
					"(Helm value clusterConnections.enabled); use a VaultConnection of this namespace", ref.Name)}
		}
		cvc := &v1alpha1.ClusterVaultConnection{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: ref.Name}, cvc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &RefusedError{Reason: ReasonConnectionNotFound, Message: fmt.Sprintf(
					"ClusterVaultConnection %q does not exist", ref.Name)}
			}
			return nil, fmt.Errorf("reading ClusterVaultConnection %s: %w", ref.Name, err)
		}
		conn := clusterVaultConnection(cvc)
		ok, err := c.NamespaceAllowed(ctx, &cvc.Spec.AllowedNamespaces, ns)
		if err != nil {
			return nil, err
		}
		conn.Allowed = ok
		if !ok {
			return conn, &RefusedError{Reason: ReasonNamespaceNotAllowed, Message: fmt.Sprintf(
				"ClusterVaultConnection %q does not allow namespace %q: ask a cluster administrator to add it to spec.allowedNamespaces "+
					"(names, or labels matching the selector)", ref.Name, ns)}
		}
		return conn, nil
	}
	return nil, fmt.Errorf("%w: spec.connectionRef.kind %q is not VaultConnection or ClusterVaultConnection", ErrInvalidSpec, ref.Kind)
}

// NamespaceAllowed evaluates allowedNamespaces for namespace ns: by name, and by the selector
// only with NamespaceSelectors (otherwise a selector that would be needed is a refusal).
func (c *Connector) NamespaceAllowed(ctx context.Context, a *v1alpha1.AllowedNamespaces, ns string) (bool, error) {
	if slices.Contains(a.Names, ns) {
		return true, nil
	}
	if a.Selector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(a.Selector)
	if err != nil {
		return false, fmt.Errorf("%w: spec.allowedNamespaces.selector: %v", ErrInvalidSpec, err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
	}
	if sel.Empty() {
		return true, nil
	}
	if !c.NamespaceSelectors {
		return false, &RefusedError{Reason: ReasonNamespaceNotAllowed, Message: fmt.Sprintf(
			"namespace %q is not in allowedNamespaces.names, and allowedNamespaces.selector is not evaluated because the "+
				"operator runs without --namespace-selectors (Helm value clusterConnections.namespaceSelectors): "+
				"ask a cluster administrator to list the namespace, or to enable selectors", ns)}
	}
	n := &corev1.Namespace{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading Namespace %s: %w", ns, err)
	}
	return sel.Matches(labels.Set(n.Labels)), nil
}

// version is an opaque digest of what a sync through conn depends on besides the VaultSecret's
// own spec: the connection object's UID and generation, whether it allows the namespace, and
// the resource versions of the credential Secrets. An inline vault without Secrets has none.
func (c *Connector) version(ctx context.Context, conn *connection) string {
	var parts []string
	if conn.Object != nil {
		parts = append(parts, fmt.Sprintf("%s/%s uid=%s gen=%d allowed=%t", conn.Kind, conn.Name,
			conn.Object.GetUID(), conn.Object.GetGeneration(), conn.Allowed))
	}
	for _, name := range CredentialSecretNames(conn.Auth) {
		parts = append(parts, fmt.Sprintf("Secret %s rv=%s", name, c.secretResourceVersion(ctx, conn.Namespace, name)))
	}
	if len(parts) == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(sum[:8])
}

// CredentialSecretNames lists the Secrets an auth spec reads, sorted and without duplicates.
func CredentialSecretNames(a *v1alpha1.VaultAuth) []string {
	if a == nil || a.ServicePrincipal == nil {
		return nil
	}
	var names []string
	for _, r := range []*v1alpha1.SecretKeyRef{a.ServicePrincipal.ClientSecretRef, a.ServicePrincipal.ClientCertificateRef, a.ServicePrincipal.PasswordRef} {
		if r != nil && !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	return names
}

// describeIdentity names the identity of a connection for status.identity (no credentials).
func describeIdentity(conn *connection) string {
	a := conn.Auth
	switch a.Method() {
	case v1alpha1.AuthMethodWorkloadIdentity:
		ns := conn.Namespace
		if conn.Place == placeCluster {
			ns = a.WorkloadIdentity.ServiceAccountNamespace
		}
		return fmt.Sprintf("workloadIdentity: ServiceAccount %s/%s", ns, a.WorkloadIdentity.ServiceAccountName)
	case v1alpha1.AuthMethodServicePrincipal:
		how := "client secret"
		if a.ServicePrincipal.ClientCertificateRef != nil {
			how = "client certificate"
		}
		return fmt.Sprintf("servicePrincipal: client %s in tenant %s, %s", a.ServicePrincipal.ClientID, a.ServicePrincipal.TenantID, how)
	case v1alpha1.AuthMethodManagedIdentity:
		switch {
		case a.ManagedIdentity.ClientID != "":
			return "managedIdentity: user-assigned, client " + a.ManagedIdentity.ClientID
		case a.ManagedIdentity.ResourceID != "":
			return "managedIdentity: user-assigned, " + a.ManagedIdentity.ResourceID
		}
		return "managedIdentity: system-assigned"
	case v1alpha1.AuthMethodOperatorIdentity:
		return "operatorIdentity"
	case v1alpha1.AuthMethodAzureCLI:
		return "azureCLI"
	}
	return ""
}

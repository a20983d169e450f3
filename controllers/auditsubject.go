package controllers

import (
	"net/url"
	"strings"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/audit"
	"github.com/vaultsync/vaultsync/internal/credentials"
)

// auditSubject describes the identity a VaultSecret reads with, for the
// audit log. identityKey is the credential cache key
// (method/tenant/client/namespace/serviceaccount/...), path-escaped.
func auditSubject(vs *v1alpha1.VaultSecret, identityKey string) audit.Subject {
	return auditSubjectOf("VaultSecret", vs.Namespace, vs.Name, identityKey)
}

// auditSubjectOf is auditSubject for an object of any kind (VaultPushSecrets write with it).
func auditSubjectOf(kind, namespace, name, identityKey string) audit.Subject {
	s := audit.Subject{Kind: kind, Namespace: namespace, Name: name}
	parts := strings.Split(identityKey, "/")
	get := func(i int) string {
		if i >= len(parts) {
			return ""
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			return ""
		}
		return v
	}
	// The audit log spells the method as the API does (workloadIdentity).
	s.Method, s.TenantID, s.ClientID = credentials.Key{Method: get(0)}.AuthMethod(), get(1), get(2)
	if ns, sa := get(3), get(4); sa != "" {
		s.ServiceAccount = ns + "/" + sa
	}
	return s
}

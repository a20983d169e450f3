package controllers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vaultsync/vaultsync/api/v1alpha1"
	"github.com/vaultsync/vaultsync/internal/connector"
	"github.com/vaultsync/vaultsync/internal/credentials"
	"github.com/vaultsync/vaultsync/internal/keyvault"
	"github.com/vaultsync/vaultsync/internal/render"
	"github.com/vaultsync/vaultsync/internal/secrets"
)

// Reasons of the Ready condition and of events that the controller itself
// decides; Key Vault, Entra and rendering failures use the reasons of
// internal/keyvault, internal/credentials and internal/render.
const (
	ReasonSynced           = "Synced"
	ReasonUpdated          = "Updated"
	ReasonSyncFailed       = "SyncFailed"
	ReasonTargetConflict   = "TargetConflict"
	ReasonMergeNotAllowed  = "MergeNotAllowed"
	ReasonTargetNotFound   = "TargetNotFound"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonWriteFailed      = "SecretWriteFailed"
	ReasonCertificateChain = "CertificateChain"
)

type retryMode int

const (
	// retryBackoff: transient or fixable outside Kubernetes; back off and retry.
	retryBackoff retryMode = iota
	// retryAfterInterval: the data in the vault must change; look again at the next refresh.
	retryAfterInterval
	// retryOnChange: only a change of the VaultSecret (or the target) can fix it.
	retryOnChange
)

// classify turns a sync error into a condition reason, a message that says
// what to do next, and how to retry. Messages name keys, objects and codes,
// never values.
func classify(err error) (reason, message string, retry retryMode) {
	message = err.Error()
	if reason, msg, ok := connector.Refusal(err); ok {
		return reason, msg, retryOnChange
	}
	switch {
	case errors.Is(err, secrets.ErrConflict):
		// Retried with backoff: the conflict clears when the other Secret
		// or VaultSecret goes away, and nothing watches for that.
		return ReasonTargetConflict, message + "; choose another spec.target.name, or delete the other Secret or VaultSecret (retried on its own)", retryBackoff
	case errors.Is(err, secrets.ErrMergeNotAllowed):
		return ReasonMergeNotAllowed, message + "; whoever may write that Secret allows this VaultSecret with: kubectl annotate secret NAME " +
			secrets.AnnotationMergeAllowed + "=VAULTSECRET (retried on its own)", retryBackoff
	case errors.Is(err, secrets.ErrTargetMissing):
		return ReasonTargetNotFound, message + "; creationPolicy Merge writes into an existing Secret: create it first, or use creationPolicy Owner", retryBackoff
	case errors.Is(err, errInvalidSpec):
		return ReasonInvalidSpec, message, retryAfterInterval
	}
	if r := credentials.Reason(err); r != "" {
		return r, withHint(message, credentials.Hint(err)), retryBackoff
	}
	var kv *keyvault.Error
	if errors.As(err, &kv) {
		return keyvault.Reason(err), withHint(message, keyvault.Hint(err)), retryBackoff
	}
	if r := render.Reason(err); r != "" {
		return r, message, retryAfterInterval
	}
	var item *itemError
	if errors.As(err, &item) {
		return ReasonSyncFailed, message, retryBackoff
	}
	if strings.Contains(message, "applying Secret") {
		return ReasonWriteFailed, message, retryBackoff
	}
	return ReasonSyncFailed, message, retryBackoff
}

func withHint(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return msg + "; " + hint
}

// sourceOf names where a VaultSecret reads from, for messages.
func sourceOf(vs *v1alpha1.VaultSecret) string {
	switch {
	case vs.Spec.ConnectionRef != nil:
		return fmt.Sprintf("%s %q", vs.Spec.ConnectionRef.KindOrDefault(), vs.Spec.ConnectionRef.Name)
	case vs.Spec.Vault != nil:
		return vs.Spec.Vault.URL
	}
	return "Key Vault"
}

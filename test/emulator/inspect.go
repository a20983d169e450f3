package emulator

import (
	"fmt"
	"maps"
	"time"
)

// Object kinds for Versions and Deleted.
const (
	KindSecrets      = kindSecrets
	KindCertificates = kindCertificates
	KindKeys         = kindKeys
)

// ObjectVersion is one stored version of an object as a test sees it: what a client wrote,
// value included (the emulator is a test tool; nothing here reaches a log).
type ObjectVersion struct {
	ID          string
	Value       string // secrets, and the secret of a certificate
	ContentType string
	Tags        map[string]string
	Enabled     bool
	Created     time.Time
	Managed     bool // the secret or key of a certificate
}

// Versions lists the versions of a live object of kind (KindSecrets, KindCertificates or
// KindKeys), oldest first: for instance to count the versions a client wrote. A missing or
// soft-deleted object is ErrNotFound.
func (e *Emulator) Versions(vaultName, kind, name string) ([]ObjectVersion, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return nil, err
	}
	o := v.collection(kind).get(name)
	if o == nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
	}
	out := make([]ObjectVersion, 0, len(o.versions))
	for _, ver := range o.versions {
		out = append(out, ObjectVersion{ID: ver.id, Value: ver.value, ContentType: ver.contentType, Tags: maps.Clone(ver.tags),
			Enabled: ver.enabled, Created: ver.created, Managed: o.managed})
	}
	return out, nil
}

// Deleted reports whether an object of kind is soft-deleted (deleted, not purged).
func (e *Emulator) Deleted(vaultName, kind, name string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return false, err
	}
	return v.collection(kind).getDeleted(name) != nil, nil
}

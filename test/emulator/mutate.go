package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// ErrNotFound is returned by the in-process API for an unknown vault, identity or object.
var ErrNotFound = errors.New("not found")

// addVaultLocked creates a vault from a validated spec and seeds its objects; e.mu held (or not yet shared).
func (e *Emulator) addVaultLocked(vs Vault) error {
	c := clouds[vs.Cloud]
	host := vaultHost(vs.Name, vs.Cloud)
	if _, ok := e.vaults[host]; ok {
		return fmt.Errorf("vault %q already exists", vs.Name)
	}
	v := &vault{name: vs.Name, cloud: c, host: host, roles: slices.Clone(vs.RoleAssignments),
		secrets: newCollection(), keys: newCollection(), certs: newCollection(), limiter: newLimiter(vs.Limits), emptyLastPage: vs.EmptyLastPage}
	now := time.Now()
	for j, s := range vs.Secrets {
		for _, sv := range s.Versions {
			if _, _, kerr := v.setSecret(s.Name, sv, now); kerr != nil {
				return fmt.Errorf("secrets[%d]: %s", j, kerr.msg)
			}
		}
	}
	for j, cs := range vs.Certificates {
		if _, err := e.importCertLocked(v, cs, now); err != nil {
			return fmt.Errorf("certificates[%d]: %w", j, err)
		}
	}
	for j, ks := range vs.Keys {
		if _, err := createKeyLocked(v, ks, now); err != nil {
			return fmt.Errorf("keys[%d]: %w", j, err)
		}
	}
	// Seeded versions are history; events start with the first change after the vault exists.
	v.onVersion = e.versionAdded
	e.vaults[host] = v
	return nil
}

func (e *Emulator) importCertLocked(v *vault, cs Certificate, now time.Time) (*version, error) {
	var m *certMaterial
	var err error
	issuer := "Unknown"
	if cs.Generate != nil {
		m, err = generateChain(cs.Name, cs.Generate)
		issuer = "Self"
	} else {
		m, err = loadCertificateMaterial(&cs, e.baseDir)
	}
	if err != nil {
		return nil, err
	}
	ver, kerr := v.addCertificate(cs.Name, newCertRecord(m, cs.ContentType, cs.PFXEncoding, issuer), cs.Tags, cs.Enabled, now)
	if kerr != nil {
		return nil, errors.New(kerr.msg)
	}
	return ver, nil
}

func createKeyLocked(v *vault, ks Key, now time.Time) (*version, error) {
	key, kerr := generateKey(ks.Kty, ks.Size, ks.Curve)
	if kerr != nil {
		return nil, errors.New(kerr.msg)
	}
	ops := ks.KeyOps
	if len(ops) == 0 {
		ops = defaultKeyOps(ks.Kty)
	}
	ver := newVersion(now, ks.Enabled, nil, nil, ks.Tags, "")
	ver.key = &keyData{kty: ks.Kty, pub: key.Public(), ops: slices.Clone(ops)}
	if _, kerr := v.putVersion(kindKeys, ks.Name, ver, false); kerr != nil {
		return nil, errors.New(kerr.msg)
	}
	return ver, nil
}

// AddVault creates a vault at runtime (its principals must exist).
func (e *Emulator) AddVault(vs Vault) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := validateVault(&vs, "vault", e.baseDir, func(p string) bool { return e.identityByRef(p) != nil }); err != nil {
		return err
	}
	return e.addVaultLocked(vs)
}

// AddIdentity adds an identity at runtime.
func (e *Emulator) AddIdentity(spec Identity) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := validateIdentity(&spec, "identity", e.baseDir); err != nil {
		return err
	}
	for _, x := range e.identities {
		if x.matches(spec.Name) || x.matches(spec.ClientID) || x.matches(spec.ObjectID) {
			return fmt.Errorf("identity: name, clientId or objectId already used by %q", x.spec.Name)
		}
		if spec.ManagedIdentity != nil && spec.ManagedIdentity.Type == admin.SystemAssigned &&
			x.spec.ManagedIdentity != nil && x.spec.ManagedIdentity.Type == admin.SystemAssigned {
			return fmt.Errorf("identity.managedIdentity.type: only one SystemAssigned identity is allowed (also %q)", x.spec.Name)
		}
	}
	id, err := newIdentity(spec, e.baseDir)
	if err != nil {
		return err
	}
	e.identities = append(e.identities, id)
	return nil
}

// AddFederatedCredential adds a federated credential to an identity (by name, client id or object id).
func (e *Emulator) AddFederatedCredential(principal string, fc FederatedCredential) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.identityByRef(principal)
	if id == nil {
		return fmt.Errorf("identity %q: %w", principal, ErrNotFound)
	}
	if err := validateFederated(&fc, "federatedCredential", e.baseDir); err != nil {
		return err
	}
	src, err := newJWKSSource(fc, e.baseDir)
	if err != nil {
		return err
	}
	id.feds = append(slices.Clone(id.feds), &fedCred{spec: fc, keys: src})
	id.spec.FederatedCredentials = append(slices.Clone(id.spec.FederatedCredentials), fc)
	return nil
}

// AddRoleAssignment grants a role on a vault.
func (e *Emulator) AddRoleAssignment(vaultName string, ra RoleAssignment) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.vaultByName(vaultName)
	if v == nil {
		return fmt.Errorf("vault %q: %w", vaultName, ErrNotFound)
	}
	if err := validateRoleAssignment(&ra, "roleAssignment", func(p string) bool { return e.identityByRef(p) != nil }); err != nil {
		return err
	}
	v.roles = append(v.roles, ra)
	return nil
}

// RemoveRoleAssignment removes matching role assignments (same principal, role and scope).
func (e *Emulator) RemoveRoleAssignment(vaultName string, ra RoleAssignment) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.vaultByName(vaultName)
	if v == nil {
		return fmt.Errorf("vault %q: %w", vaultName, ErrNotFound)
	}
	if err := validateRoleAssignment(&ra, "roleAssignment", nil); err != nil {
		return err
	}
	n := len(v.roles)
	v.roles = slices.DeleteFunc(slices.Clone(v.roles), func(x RoleAssignment) bool {
		return strings.EqualFold(x.Principal, ra.Principal) && strings.EqualFold(x.Role, ra.Role) && x.Scope == ra.Scope
	})
	if len(v.roles) == n {
		return fmt.Errorf("role assignment: %w", ErrNotFound)
	}
	return nil
}

func (e *Emulator) vaultLocked(name string) (*vault, error) {
	v := e.vaultByName(name)
	if v == nil {
		return nil, fmt.Errorf("vault %q: %w", name, ErrNotFound)
	}
	return v, nil
}

// SetSecret adds a new version of a secret (creating or rotating it) and returns its id.
func (e *Emulator) SetSecret(vaultName, name string, sv SecretVersion) (VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return VersionInfo{}, err
	}
	o, ver, kerr := v.setSecret(name, sv, time.Now())
	if kerr != nil {
		return VersionInfo{}, errors.New(kerr.msg)
	}
	return versionInfo(v, kindSecrets, o, ver), nil
}

// UpdateSecret changes properties of a secret version ("" = latest), e.g. to disable it.
func (e *Emulator) UpdateSecret(vaultName, name, ver string, u SecretUpdate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return err
	}
	o := v.secrets.get(name)
	if o == nil || o.version(ver) == nil {
		return fmt.Errorf("secret %s/%s: %w", name, ver, ErrNotFound)
	}
	sv := o.version(ver)
	a := &reqAttrs{Enabled: u.Enabled}
	if u.NotBefore != nil {
		n := u.NotBefore.Unix()
		a.NotBefore = &n
	}
	if u.Expires != nil {
		n := u.Expires.Unix()
		a.Expires = &n
	}
	applyUpdate(sv, a, u.Tags, u.Tags != nil, u.ContentType, time.Now())
	return nil
}

// SetSecretEnabled enables or disables a secret version ("" = latest).
func (e *Emulator) SetSecretEnabled(vaultName, name, ver string, enabled bool) error {
	return e.UpdateSecret(vaultName, name, ver, SecretUpdate{Enabled: &enabled})
}

// DeleteSecret soft-deletes a secret, and purges it too when purge is set.
func (e *Emulator) DeleteSecret(vaultName, name string, purge bool) error {
	return e.deleteObject(vaultName, kindSecrets, name, purge)
}

// DeleteCertificate soft-deletes a certificate (with its secret and key), and purges it when purge is set.
func (e *Emulator) DeleteCertificate(vaultName, name string, purge bool) error {
	return e.deleteObject(vaultName, kindCertificates, name, purge)
}

// DeleteKey soft-deletes a key, and purges it when purge is set.
func (e *Emulator) DeleteKey(vaultName, name string, purge bool) error {
	return e.deleteObject(vaultName, kindKeys, name, purge)
}

func (e *Emulator) deleteObject(vaultName, kind, name string, purge bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return err
	}
	if _, kerr := v.deleteObject(kind, name, time.Now()); kerr != nil {
		if kerr.status == http.StatusNotFound {
			return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
		}
		return errors.New(kerr.msg)
	}
	if purge {
		if kerr := v.purgeObject(kind, name); kerr != nil {
			return errors.New(kerr.msg)
		}
	}
	return nil
}

// ImportCertificate adds a certificate version (generated or from PEM/PFX) with its managed secret and key.
func (e *Emulator) ImportCertificate(vaultName string, cs Certificate) (VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return VersionInfo{}, err
	}
	if err := validateCertificate(&cs, "certificate", e.baseDir); err != nil {
		return VersionInfo{}, err
	}
	ver, err := e.importCertLocked(v, cs, time.Now())
	if err != nil {
		return VersionInfo{}, err
	}
	return versionInfo(v, kindCertificates, v.certs.get(cs.Name), ver), nil
}

// CreateKey adds a key version.
func (e *Emulator) CreateKey(vaultName string, ks Key) (VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return VersionInfo{}, err
	}
	if err := validateKey(&ks, "key"); err != nil {
		return VersionInfo{}, err
	}
	ver, err := createKeyLocked(v, ks, time.Now())
	if err != nil {
		return VersionInfo{}, err
	}
	return versionInfo(v, kindKeys, v.keys.get(ks.Name), ver), nil
}

// SetFaults replaces the injected faults.
func (e *Emulator) SetFaults(f Faults) error {
	for i, vf := range f.Vaults {
		if vf.ErrorRate < 0 || vf.ErrorRate > 1 {
			return fieldErr(fmt.Sprintf("vaults[%d].errorRate", i), "must be between 0 and 1")
		}
		if vf.Status != 0 && (vf.Status < 400 || vf.Status > 599) {
			return fieldErr(fmt.Sprintf("vaults[%d].status", i), "must be an HTTP error status (400-599)")
		}
	}
	if ts := f.TokenService; ts != nil {
		switch ts.Mode {
		case "", admin.TokenDownUnavailable, admin.TokenDownReset:
		default:
			return fieldErr("tokenService.mode", "unknown mode %q (want unavailable or reset)", ts.Mode)
		}
	}
	if f.TokenLifetime != nil && f.TokenLifetime.Duration < time.Second {
		return fieldErr("tokenLifetime", "must be at least 1s")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = f
	e.faults.Vaults = slices.Clone(f.Vaults)
	return nil
}

// Faults returns the injected faults (counts show what is left).
func (e *Emulator) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults
	f.Vaults = slices.Clone(f.Vaults)
	return f
}

// ClearFaults removes every injected fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = Faults{}
}

// MintToken issues an access token for an identity without a token request (for a fake `az`, scripts, curl).
func (e *Emulator) MintToken(req TokenRequest) (Token, error) {
	e.mu.Lock()
	id := e.identityByRef(req.Principal)
	lifetime := e.tokenLifetimeLocked()
	e.mu.Unlock()
	if id == nil {
		return Token{}, fmt.Errorf("identity %q: %w", req.Principal, ErrNotFound)
	}
	res := req.Resource
	if res == "" {
		res = clouds[admin.CloudPublic].resource
	}
	if _, ok := knownResource(res); !ok {
		return Token{}, fmt.Errorf("resource %q is not a Key Vault resource", res)
	}
	if req.Lifetime != nil && req.Lifetime.Duration > 0 {
		lifetime = req.Lifetime.Duration
	}
	at, exp, err := e.mintToken(id, res, admin.AuthMinted, lifetime)
	if err != nil {
		return Token{}, err
	}
	e.record(&admin.LogEntry{Service: admin.ServiceEntra, Method: "MINT", Operation: "MintToken", Identity: id.spec.Name,
		AppID: id.spec.ClientID, ObjectID: id.spec.ObjectID, AuthMethod: admin.AuthMinted, Status: http.StatusOK})
	return Token{AccessToken: at, ExpiresOn: exp.Unix()}, nil
}

package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 by definition
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// Object kinds, as they appear in paths.
const (
	kindSecrets      = "secrets"
	kindKeys         = "keys"
	kindCertificates = "certificates"
)

const (
	recoveryLevel   = "Recoverable+Purgeable"
	recoverableDays = 90
	maxSecretBytes  = 25 * 1024
)

// version is one version of a secret, key or certificate.
type version struct {
	id          string
	created     time.Time
	updated     time.Time
	enabled     bool
	nbf, exp    *time.Time
	tags        map[string]string
	contentType string

	value string      // secrets
	kid   string      // managed secrets: the backing key id
	key   *keyData    // keys
	cert  *certRecord // certificates
}

// keyData is the public part of a key.
type keyData struct {
	kty string
	ops []string
	pub crypto.PublicKey
}

// certRecord is a certificate version with the policy it was made under.
type certRecord struct {
	m           *certMaterial
	contentType string
	pfxEncoding string
	issuer      string // "Self" for generated chains, "Unknown" for imports
	kty         string
	keySize     int
	crv         string
}

// object is a named secret, key or certificate with its versions, oldest first.
type object struct {
	name      string
	managed   bool
	versions  []*version
	deletedAt time.Time
}

func (o *object) latest() *version {
	if len(o.versions) == 0 {
		return nil
	}
	return o.versions[len(o.versions)-1]
}

func (o *object) version(id string) *version {
	if id == "" {
		return o.latest()
	}
	for _, v := range o.versions {
		if v.id == strings.ToLower(id) {
			return v
		}
	}
	return nil
}

// collection holds live and soft-deleted objects of one kind, keyed by lower-case name.
type collection struct {
	live    map[string]*object
	deleted map[string]*object
}

func newCollection() collection {
	return collection{live: map[string]*object{}, deleted: map[string]*object{}}
}

func (c *collection) get(name string) *object        { return c.live[strings.ToLower(name)] }
func (c *collection) getDeleted(name string) *object { return c.deleted[strings.ToLower(name)] }

// sorted returns objects in name order.
func sorted(m map[string]*object) []*object {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]*object, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// vault is an emulated Key Vault.
type vault struct {
	name          string
	cloud         cloud
	host          string
	roles         []RoleAssignment
	secrets       collection
	keys          collection
	certs         collection
	limiter       *limiter
	emptyLastPage bool
	// onVersion, when set, hears of every version added to an object not managed by a
	// certificate (event delivery).
	onVersion func(v *vault, kind, name string, ver *version)
}

func (v *vault) collection(kind string) *collection {
	switch kind {
	case kindKeys:
		return &v.keys
	case kindCertificates:
		return &v.certs
	}
	return &v.secrets
}

func (v *vault) objectURL(kind, name, ver string) string {
	u := "https://" + v.host + "/" + kind + "/" + name
	if ver != "" {
		u += "/" + ver
	}
	return u
}

// kvError is a Key Vault error answer.
type kvError struct {
	status int
	code   string
	inner  string
	msg    string
}

func (e *kvError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func notFound(kind, name, ver string) *kvError {
	code := map[string]string{kindSecrets: "SecretNotFound", kindKeys: "KeyNotFound", kindCertificates: "CertificateNotFound"}[kind]
	what := map[string]string{kindSecrets: "secret", kindKeys: "key", kindCertificates: "certificate"}[kind]
	msg := fmt.Sprintf("A %s with (name/id) %s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", what, name, what)
	if ver != "" {
		msg = fmt.Sprintf("A %s with (name/id) %s/%s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", what, name, ver, what)
	}
	return &kvError{http.StatusNotFound, code, "", msg}
}

func deletedNotFound(kind, name string) *kvError {
	code := map[string]string{kindSecrets: "SecretNotFound", kindKeys: "KeyNotFound", kindCertificates: "CertificateNotFound"}[kind]
	what := map[string]string{kindSecrets: "Secret", kindKeys: "Key", kindCertificates: "Certificate"}[kind]
	return &kvError{http.StatusNotFound, code, "", fmt.Sprintf("Deleted %s not found: %s", what, name)}
}

func badParameter(format string, args ...any) *kvError {
	return &kvError{http.StatusBadRequest, "BadParameter", "", fmt.Sprintf(format, args...)}
}

func conflictDeleted(kind, name string) *kvError {
	what := map[string]string{kindSecrets: "Secret", kindKeys: "Key", kindCertificates: "Certificate"}[kind]
	return &kvError{http.StatusConflict, "Conflict", "ObjectIsDeletedButRecoverable",
		fmt.Sprintf("%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", what, name, strings.ToLower(what))}
}

func managedConflict(kind, name string) *kvError {
	return &kvError{http.StatusForbidden, "Forbidden", "",
		fmt.Sprintf("The %s %s is managed by the certificate of the same name; use the certificate operations instead.", strings.TrimSuffix(kind, "s"), name)}
}

// newVersion builds a version with common properties.
func newVersion(now time.Time, enabled *bool, nbf, exp *time.Time, tags map[string]string, contentType string) *version {
	v := &version{id: newVersionID(), created: now, updated: now, enabled: enabled == nil || *enabled,
		tags: maps.Clone(tags), contentType: contentType}
	if nbf != nil {
		t := nbf.Truncate(time.Second)
		v.nbf = &t
	}
	if exp != nil {
		t := exp.Truncate(time.Second)
		v.exp = &t
	}
	return v
}

// putVersion appends a version to the live object name of kind, creating the object.
func (v *vault) putVersion(kind, name string, ver *version, managed bool) (*object, *kvError) {
	c := v.collection(kind)
	if c.getDeleted(name) != nil {
		return nil, conflictDeleted(kind, name)
	}
	o := c.get(name)
	if o == nil {
		o = &object{name: name, managed: managed}
		c.live[strings.ToLower(name)] = o
	} else if o.managed != managed {
		return nil, managedConflict(kind, o.name)
	}
	o.versions = append(o.versions, ver)
	if v.onVersion != nil && !managed {
		v.onVersion(v, kind, o.name, ver)
	}
	return o, nil
}

// setSecret adds a secret version.
func (v *vault) setSecret(name string, sv SecretVersion, now time.Time) (*object, *version, *kvError) {
	if !objectNameRE.MatchString(name) {
		return nil, nil, badParameter("The request URI contains an invalid name: %s", name)
	}
	if len(sv.Value) > maxSecretBytes {
		return nil, nil, badParameter("Secret value is too large (%d bytes, at most %d).", len(sv.Value), maxSecretBytes)
	}
	ver := newVersion(now, sv.Enabled, sv.NotBefore, sv.Expires, sv.Tags, sv.ContentType)
	ver.value = sv.Value
	o, err := v.putVersion(kindSecrets, name, ver, false)
	return o, ver, err
}

// addCertificate adds a certificate version and the managed secret and key versions with the same id.
func (v *vault) addCertificate(name string, rec *certRecord, tags map[string]string, enabled *bool, now time.Time) (*version, *kvError) {
	if !objectNameRE.MatchString(name) {
		return nil, badParameter("The request URI contains an invalid name: %s", name)
	}
	for _, k := range []string{kindCertificates, kindSecrets, kindKeys} {
		if v.collection(k).getDeleted(name) != nil {
			return nil, conflictDeleted(k, name)
		}
	}
	if o := v.secrets.get(name); o != nil && !o.managed {
		return nil, &kvError{http.StatusConflict, "Conflict", "", fmt.Sprintf("A secret named %s exists and is not managed by a certificate.", name)}
	}
	if o := v.keys.get(name); o != nil && !o.managed {
		return nil, &kvError{http.StatusConflict, "Conflict", "", fmt.Sprintf("A key named %s exists and is not managed by a certificate.", name)}
	}
	value, err := rec.m.secretValue(rec.contentType, rec.pfxEncoding)
	if err != nil {
		return nil, badParameter("Cannot encode the certificate: %v", err)
	}
	nbf, exp := rec.m.leaf.NotBefore, rec.m.leaf.NotAfter
	cv := newVersion(now, enabled, &nbf, &exp, tags, rec.contentType)
	cv.cert = rec
	sv := newVersion(now, enabled, &nbf, &exp, tags, rec.contentType)
	sv.id, sv.value, sv.kid = cv.id, value, v.objectURL(kindKeys, name, cv.id)
	kv := newVersion(now, enabled, &nbf, &exp, tags, "")
	kv.id = cv.id
	kv.key = &keyData{kty: rec.kty, pub: rec.m.key.Public(), ops: defaultKeyOps(rec.kty)}
	if _, kerr := v.putVersion(kindCertificates, name, cv, false); kerr != nil {
		return nil, kerr
	}
	if _, kerr := v.putVersion(kindSecrets, name, sv, true); kerr != nil {
		return nil, kerr
	}
	if _, kerr := v.putVersion(kindKeys, name, kv, true); kerr != nil {
		return nil, kerr
	}
	return cv, nil
}

// newCertRecord describes the policy of a certificate material.
func newCertRecord(m *certMaterial, contentType, pfxEncoding, issuer string) *certRecord {
	rec := &certRecord{m: m, contentType: contentType, pfxEncoding: pfxEncoding, issuer: issuer}
	switch k := m.key.Public().(type) {
	case *rsa.PublicKey:
		rec.kty, rec.keySize = "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		rec.kty, rec.crv = "EC", k.Curve.Params().Name
	}
	return rec
}

func defaultKeyOps(kty string) []string {
	if strings.HasPrefix(kty, "EC") {
		return []string{"sign", "verify"}
	}
	return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
}

// deleteObject soft-deletes an object (a certificate takes its secret and key along).
func (v *vault) deleteObject(kind, name string, now time.Time) (*object, *kvError) {
	c := v.collection(kind)
	o := c.get(name)
	if o == nil {
		return nil, notFound(kind, name, "")
	}
	if o.managed {
		return nil, managedConflict(kind, o.name)
	}
	kinds := []string{kind}
	if kind == kindCertificates {
		kinds = []string{kindCertificates, kindSecrets, kindKeys}
	}
	for _, k := range kinds {
		cc := v.collection(k)
		if x := cc.get(name); x != nil {
			x.deletedAt = now
			delete(cc.live, strings.ToLower(name))
			cc.deleted[strings.ToLower(name)] = x
		}
	}
	return o, nil
}

// purgeObject removes a soft-deleted object for good.
func (v *vault) purgeObject(kind, name string) *kvError {
	c := v.collection(kind)
	o := c.getDeleted(name)
	if o == nil {
		return deletedNotFound(kind, name)
	}
	if o.managed {
		return managedConflict(kind, o.name)
	}
	kinds := []string{kind}
	if kind == kindCertificates {
		kinds = []string{kindCertificates, kindSecrets, kindKeys}
	}
	for _, k := range kinds {
		delete(v.collection(k).deleted, strings.ToLower(name))
	}
	return nil
}

// recoverObject brings a soft-deleted object back.
func (v *vault) recoverObject(kind, name string) (*object, *kvError) {
	c := v.collection(kind)
	o := c.getDeleted(name)
	if o == nil {
		return nil, deletedNotFound(kind, name)
	}
	if o.managed {
		return nil, managedConflict(kind, o.name)
	}
	kinds := []string{kind}
	if kind == kindCertificates {
		kinds = []string{kindCertificates, kindSecrets, kindKeys}
	}
	for _, k := range kinds {
		cc := v.collection(k)
		if x := cc.getDeleted(name); x != nil {
			x.deletedAt = time.Time{}
			delete(cc.deleted, strings.ToLower(name))
			cc.live[strings.ToLower(name)] = x
		}
	}
	return o, nil
}

// ---- JSON shapes ----

type jsonAttrs struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
}

func attrsOf(ver *version) jsonAttrs {
	a := jsonAttrs{Enabled: ver.enabled, Created: ver.created.Unix(), Updated: ver.updated.Unix(),
		RecoveryLevel: recoveryLevel, RecoverableDays: recoverableDays}
	if ver.nbf != nil {
		n := ver.nbf.Unix()
		a.NotBefore = &n
	}
	if ver.exp != nil {
		n := ver.exp.Unix()
		a.Expires = &n
	}
	return a
}

// deletedInfo are the extra fields of deleted objects.
type deletedInfo struct {
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        *int64 `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64 `json:"scheduledPurgeDate,omitempty"`
}

func (v *vault) deletedInfo(kind string, o *object) deletedInfo {
	if o.deletedAt.IsZero() {
		return deletedInfo{}
	}
	d, p := o.deletedAt.Unix(), o.deletedAt.Add(recoverableDays*24*time.Hour).Unix()
	return deletedInfo{RecoveryID: "https://" + v.host + "/deleted" + kind + "/" + o.name, DeletedDate: &d, ScheduledPurgeDate: &p}
}

type jsonSecret struct {
	deletedInfo
	Value       *string           `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  jsonAttrs         `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	Managed     bool              `json:"managed,omitempty"`
}

// secretJSON renders a secret version; item=true gives the list form (no value, id without version
// unless withVersion).
func (v *vault) secretJSON(o *object, ver *version, value *string, withVersion bool) jsonSecret {
	id := v.objectURL(kindSecrets, o.name, "")
	if withVersion {
		id = v.objectURL(kindSecrets, o.name, ver.id)
	}
	return jsonSecret{deletedInfo: v.deletedInfo(kindSecrets, o), Value: value, ID: id, ContentType: ver.contentType,
		Attributes: attrsOf(ver), Tags: ver.tags, Kid: ver.kid, Managed: o.managed}
}

type jsonJWK struct {
	Kid    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

type jsonKey struct {
	deletedInfo
	Key        *jsonJWK          `json:"key,omitempty"`
	Kid        string            `json:"kid,omitempty"`
	Attributes jsonAttrs         `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	Managed    bool              `json:"managed,omitempty"`
}

var b64url = base64.RawURLEncoding

func publicJWK(kid string, kd *keyData) *jsonJWK {
	j := &jsonJWK{Kid: kid, Kty: kd.kty, KeyOps: kd.ops}
	switch k := kd.pub.(type) {
	case *rsa.PublicKey:
		j.N = b64url.EncodeToString(k.N.Bytes())
		j.E = b64url.EncodeToString(bigEndian(k.E))
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		j.Crv = k.Curve.Params().Name
		j.X = b64url.EncodeToString(k.X.FillBytes(make([]byte, size)))
		j.Y = b64url.EncodeToString(k.Y.FillBytes(make([]byte, size)))
	}
	return j
}

func bigEndian(e int) []byte {
	var b []byte
	for e > 0 {
		b = append([]byte{byte(e)}, b...)
		e >>= 8
	}
	return b
}

// keyJSON renders a key bundle (full=true) or a list item.
func (v *vault) keyJSON(o *object, ver *version, full bool) jsonKey {
	j := jsonKey{deletedInfo: v.deletedInfo(kindKeys, o), Attributes: attrsOf(ver), Tags: ver.tags, Managed: o.managed}
	if full {
		j.Key = publicJWK(v.objectURL(kindKeys, o.name, ver.id), ver.key)
	} else {
		j.Kid = v.objectURL(kindKeys, o.name, "")
	}
	return j
}

type jsonPolicy struct {
	ID              string           `json:"id"`
	KeyProps        map[string]any   `json:"key_props"`
	SecretProps     map[string]any   `json:"secret_props"`
	X509Props       map[string]any   `json:"x509_props"`
	LifetimeActions []map[string]any `json:"lifetime_actions"`
	Issuer          map[string]any   `json:"issuer"`
	Attributes      map[string]any   `json:"attributes"`
}

type jsonCert struct {
	deletedInfo
	ID          string            `json:"id"`
	Kid         string            `json:"kid,omitempty"`
	Sid         string            `json:"sid,omitempty"`
	X5t         string            `json:"x5t"`
	Cer         string            `json:"cer,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  jsonAttrs         `json:"attributes"`
	Policy      *jsonPolicy       `json:"policy,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Subject     string            `json:"subject,omitempty"`
}

func x5t(der []byte) string {
	h := sha1.Sum(der) //nolint:gosec // thumbprint
	return b64url.EncodeToString(h[:])
}

func (v *vault) policyJSON(o *object, ver *version) *jsonPolicy {
	rec := ver.cert
	keyProps := map[string]any{"exportable": true, "kty": rec.kty, "reuse_key": false}
	if rec.keySize != 0 {
		keyProps["key_size"] = rec.keySize
	}
	if rec.crv != "" {
		keyProps["crv"] = rec.crv
	}
	leaf := rec.m.leaf
	x509Props := map[string]any{
		"subject":         leaf.Subject.String(),
		"ekus":            []string{},
		"key_usage":       []string{},
		"validity_months": max(1, int(leaf.NotAfter.Sub(leaf.NotBefore).Hours()/24/30)),
	}
	if len(leaf.DNSNames) > 0 {
		x509Props["sans"] = map[string]any{"dns_names": leaf.DNSNames}
	}
	first := o.versions[0]
	return &jsonPolicy{
		ID:              v.objectURL(kindCertificates, o.name, "policy"),
		KeyProps:        keyProps,
		SecretProps:     map[string]any{"contentType": rec.contentType},
		X509Props:       x509Props,
		LifetimeActions: []map[string]any{{"trigger": map[string]any{"lifetime_percentage": 80}, "action": map[string]any{"action_type": "EmailContacts"}}},
		Issuer:          map[string]any{"name": rec.issuer},
		Attributes:      map[string]any{"enabled": true, "created": first.created.Unix(), "updated": ver.updated.Unix()},
	}
}

// certJSON renders a certificate bundle (full=true) or a list item.
func (v *vault) certJSON(o *object, ver *version, full bool) jsonCert {
	j := jsonCert{deletedInfo: v.deletedInfo(kindCertificates, o), X5t: x5t(ver.cert.m.leaf.Raw), Attributes: attrsOf(ver), Tags: ver.tags}
	if !full {
		j.ID = v.objectURL(kindCertificates, o.name, "")
		return j
	}
	j.ID = v.objectURL(kindCertificates, o.name, ver.id)
	j.Kid = v.objectURL(kindKeys, o.name, ver.id)
	j.Sid = v.objectURL(kindSecrets, o.name, ver.id)
	j.Cer = base64.StdEncoding.EncodeToString(ver.cert.m.leaf.Raw)
	j.ContentType = ver.cert.contentType
	j.Policy = v.policyJSON(o, ver)
	return j
}

// certVersionItem renders an item of the versions list (id with version).
func (v *vault) certVersionItem(o *object, ver *version) jsonCert {
	return jsonCert{ID: v.objectURL(kindCertificates, o.name, ver.id), X5t: x5t(ver.cert.m.leaf.Raw), Attributes: attrsOf(ver), Tags: ver.tags}
}

// keyVersionItem renders an item of the key versions list (kid with version).
func (v *vault) keyVersionItem(o *object, ver *version) jsonKey {
	return jsonKey{Kid: v.objectURL(kindKeys, o.name, ver.id), Attributes: attrsOf(ver), Tags: ver.tags, Managed: o.managed}
}

// admin helper: the version info of a new version.
func versionInfo(v *vault, kind string, o *object, ver *version) admin.VersionInfo {
	vi := admin.VersionInfo{Name: o.name, Version: ver.id, ID: v.objectURL(kind, o.name, ver.id)}
	if ver.cert != nil {
		vi.X5t = x5t(ver.cert.m.leaf.Raw)
	}
	return vi
}

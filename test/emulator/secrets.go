package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

func listSecrets(c *call) (int, any, *kvError) {
	var items []any
	for _, o := range sorted(c.v.secrets.live) {
		items = append(items, c.v.secretJSON(o, o.latest(), nil, false))
	}
	return c.page(items)
}

func listSecretVersions(c *call) (int, any, *kvError) {
	o := c.v.secrets.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, "")
	}
	var items []any
	for _, ver := range o.versions {
		items = append(items, c.v.secretJSON(o, ver, nil, true))
	}
	return c.page(items)
}

func getSecret(c *call) (int, any, *kvError) {
	o := c.v.secrets.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, c.rt.version)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, c.rt.version)
	}
	if !ver.enabled {
		return 0, nil, &kvError{http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret."}
	}
	value := ver.value
	if out := c.r.URL.Query().Get("outContentType"); out != "" {
		if out != admin.ContentTypePEM || !o.managed {
			return 0, nil, badParameter("outContentType %q is only supported as %s on a certificate's secret.", out, admin.ContentTypePEM)
		}
		if ver.contentType != admin.ContentTypePEM {
			cv := c.v.certs.get(o.name)
			if cv == nil || cv.version(ver.id) == nil {
				return 0, nil, notFound(kindCertificates, o.name, ver.id)
			}
			p, err := cv.version(ver.id).cert.m.pem()
			if err != nil {
				return 0, nil, badParameter("conversion failed")
			}
			value = p
		}
		j := c.v.secretJSON(o, ver, &value, true)
		j.ContentType = admin.ContentTypePEM
		return http.StatusOK, j, nil
	}
	return http.StatusOK, c.v.secretJSON(o, ver, &value, true), nil
}

type setSecretBody struct {
	Value       *string           `json:"value"`
	ContentType string            `json:"contentType"`
	Tags        map[string]string `json:"tags"`
	Attributes  *reqAttrs         `json:"attributes"`
}

func setSecret(c *call) (int, any, *kvError) {
	var b setSecretBody
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	if b.Value == nil {
		return 0, nil, badParameter("The parameter 'value' is required.")
	}
	sv := SecretVersion{Value: *b.Value, ContentType: b.ContentType, Tags: b.Tags}
	if b.Attributes != nil {
		sv.Enabled, sv.NotBefore, sv.Expires = b.Attributes.Enabled, unixPtr(b.Attributes.NotBefore), unixPtr(b.Attributes.Expires)
	}
	o, ver, kerr := c.v.setSecret(c.rt.name, sv, c.now)
	if kerr != nil {
		return 0, nil, kerr
	}
	value := ver.value
	return http.StatusOK, c.v.secretJSON(o, ver, &value, true), nil
}

func updateSecret(c *call) (int, any, *kvError) {
	var b struct {
		ContentType *string         `json:"contentType"`
		Tags        json.RawMessage `json:"tags"`
		Attributes  *reqAttrs       `json:"attributes"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	o := c.v.secrets.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, c.rt.version)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, c.rt.version)
	}
	tags, tagsSet, kerr := parseTags(b.Tags)
	if kerr != nil {
		return 0, nil, kerr
	}
	applyUpdate(ver, b.Attributes, tags, tagsSet, b.ContentType, c.now)
	return http.StatusOK, c.v.secretJSON(o, ver, nil, true), nil
}

func parseTags(raw json.RawMessage) (map[string]string, bool, *kvError) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	if string(raw) == "null" {
		return nil, true, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false, badParameter("tags must be an object of strings")
	}
	return m, true, nil
}

// Backups are opaque to clients; this emulator's format is a prefix and JSON.
const secretBackupPrefix = "KVEMU-SECRET-BACKUP-V1\n"

type backupVersion struct {
	ID          string            `json:"id"`
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Enabled     bool              `json:"enabled"`
	NotBefore   *time.Time        `json:"nbf,omitempty"`
	Expires     *time.Time        `json:"exp,omitempty"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
}

type secretBackup struct {
	Name     string          `json:"name"`
	Versions []backupVersion `json:"versions"`
}

func backupSecret(c *call) (int, any, *kvError) {
	o := c.v.secrets.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindSecrets, c.rt.name, "")
	}
	if o.managed {
		return 0, nil, managedConflict(kindSecrets, o.name)
	}
	bk := secretBackup{Name: o.name}
	for _, v := range o.versions {
		bk.Versions = append(bk.Versions, backupVersion{ID: v.id, Value: v.value, ContentType: v.contentType, Tags: v.tags,
			Enabled: v.enabled, NotBefore: v.nbf, Expires: v.exp, Created: v.created, Updated: v.updated})
	}
	j, _ := json.Marshal(bk)
	blob := append([]byte(secretBackupPrefix), j...)
	return http.StatusOK, map[string]string{"value": base64.RawURLEncoding.EncodeToString(blob)}, nil
}

func restoreSecret(c *call) (int, any, *kvError) {
	var b struct {
		Value string `json:"value"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	blob, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b.Value, "="))
	if err != nil || !bytes.HasPrefix(blob, []byte(secretBackupPrefix)) {
		return 0, nil, badParameter("Backup blob is corrupt.")
	}
	var bk secretBackup
	if err := json.Unmarshal(blob[len(secretBackupPrefix):], &bk); err != nil || len(bk.Versions) == 0 || !objectNameRE.MatchString(bk.Name) {
		return 0, nil, badParameter("Backup blob is corrupt.")
	}
	if c.v.secrets.get(bk.Name) != nil {
		return 0, nil, &kvError{http.StatusConflict, "Conflict", "", "Secret " + bk.Name + " already exists; a backup can only be restored under an unused name."}
	}
	if c.v.secrets.getDeleted(bk.Name) != nil {
		return 0, nil, conflictDeleted(kindSecrets, bk.Name)
	}
	o := &object{name: bk.Name}
	for _, bv := range bk.Versions {
		o.versions = append(o.versions, &version{id: bv.ID, value: bv.Value, contentType: bv.ContentType, tags: bv.Tags,
			enabled: bv.Enabled, nbf: bv.NotBefore, exp: bv.Expires, created: bv.Created, updated: bv.Updated})
	}
	c.rt.name = o.name
	c.v.secrets.live[strings.ToLower(o.name)] = o
	return http.StatusOK, c.v.secretJSON(o, o.latest(), nil, true), nil
}

package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

func listCertificates(c *call) (int, any, *kvError) {
	var items []any
	for _, o := range sorted(c.v.certs.live) {
		items = append(items, c.v.certJSON(o, o.latest(), false))
	}
	return c.page(items)
}

func listCertificateVersions(c *call) (int, any, *kvError) {
	o := c.v.certs.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, "")
	}
	var items []any
	for _, ver := range o.versions {
		items = append(items, c.v.certVersionItem(o, ver))
	}
	return c.page(items)
}

func getCertificate(c *call) (int, any, *kvError) {
	o := c.v.certs.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, c.rt.version)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, c.rt.version)
	}
	return http.StatusOK, c.v.certJSON(o, ver, true), nil
}

func getCertificatePolicy(c *call) (int, any, *kvError) {
	o := c.v.certs.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, "")
	}
	return http.StatusOK, c.v.policyJSON(o, o.latest()), nil
}

func importCertificate(c *call) (int, any, *kvError) {
	var b struct {
		Value  string `json:"value"`
		Pwd    string `json:"pwd"`
		Policy *struct {
			SecretProps *struct {
				ContentType string `json:"contentType"`
			} `json:"secret_props"`
		} `json:"policy"`
		Attributes *reqAttrs         `json:"attributes"`
		Tags       map[string]string `json:"tags"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	if b.Value == "" {
		return 0, nil, badParameter("The parameter 'value' is required.")
	}
	ct := ""
	if b.Policy != nil && b.Policy.SecretProps != nil {
		ct = b.Policy.SecretProps.ContentType
	}
	spec := Certificate{Name: c.rt.name, Password: b.Pwd, Tags: b.Tags, ContentType: ct}
	isPEM := strings.Contains(b.Value, "-----BEGIN")
	if isPEM {
		spec.PEM = b.Value
		if spec.ContentType == "" {
			spec.ContentType = admin.ContentTypePEM
		}
	} else {
		if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b.Value)); err != nil {
			return 0, nil, badParameter("The certificate value is neither PEM nor base64 PKCS#12.")
		}
		spec.PFX = b.Value
	}
	if spec.ContentType == "" {
		spec.ContentType = admin.ContentTypePKCS12
	}
	if spec.ContentType != admin.ContentTypePKCS12 && spec.ContentType != admin.ContentTypePEM {
		return 0, nil, badParameter("Unsupported content type %q.", spec.ContentType)
	}
	if b.Attributes != nil {
		spec.Enabled = b.Attributes.Enabled
	}
	m, err := loadCertificateMaterial(&spec, "")
	if err != nil {
		return 0, nil, badParameter("The specified certificate could not be read: %v", err)
	}
	ver, kerr := c.v.addCertificate(c.rt.name, newCertRecord(m, spec.ContentType, admin.PFXModern, "Unknown"), spec.Tags, spec.Enabled, c.now)
	if kerr != nil {
		return 0, nil, kerr
	}
	c.rt.version = ver.id
	return http.StatusOK, c.v.certJSON(c.v.certs.get(c.rt.name), ver, true), nil
}

func updateCertificate(c *call) (int, any, *kvError) {
	var b struct {
		Tags       json.RawMessage `json:"tags"`
		Attributes *reqAttrs       `json:"attributes"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	o := c.v.certs.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, c.rt.version)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindCertificates, c.rt.name, c.rt.version)
	}
	tags, tagsSet, kerr := parseTags(b.Tags)
	if kerr != nil {
		return 0, nil, kerr
	}
	applyUpdate(ver, b.Attributes, tags, tagsSet, nil, c.now)
	// The managed secret and key follow the certificate's enabled state.
	for _, k := range []string{kindSecrets, kindKeys} {
		if mo := c.v.collection(k).get(o.name); mo != nil {
			if mv := mo.version(ver.id); mv != nil {
				mv.enabled, mv.updated = ver.enabled, c.now
			}
		}
	}
	return http.StatusOK, c.v.certJSON(o, ver, true), nil
}

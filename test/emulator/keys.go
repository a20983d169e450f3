package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"strings"
)

func listKeys(c *call) (int, any, *kvError) {
	var items []any
	for _, o := range sorted(c.v.keys.live) {
		items = append(items, c.v.keyJSON(o, o.latest(), false))
	}
	return c.page(items)
}

func listKeyVersions(c *call) (int, any, *kvError) {
	o := c.v.keys.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindKeys, c.rt.name, "")
	}
	var items []any
	for _, ver := range o.versions {
		items = append(items, c.v.keyVersionItem(o, ver))
	}
	return c.page(items)
}

func getKey(c *call) (int, any, *kvError) {
	o := c.v.keys.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindKeys, c.rt.name, c.rt.version)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindKeys, c.rt.name, c.rt.version)
	}
	return http.StatusOK, c.v.keyJSON(o, ver, true), nil
}

// generateKey makes a key pair for kty (RSA, RSA-HSM, EC, EC-HSM).
func generateKey(kty string, size int, crv string) (crypto.Signer, *kvError) {
	switch kty {
	case "RSA", "RSA-HSM":
		if size == 0 {
			size = 2048
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return nil, badParameter("key_size %d is not supported (2048, 3072 or 4096).", size)
		}
		k, err := rsa.GenerateKey(rand.Reader, size)
		if err != nil {
			return nil, badParameter("key generation failed")
		}
		return k, nil
	case "EC", "EC-HSM":
		if crv == "" {
			crv = "P-256"
		}
		curve, ok := curves[crv]
		if !ok {
			return nil, badParameter("crv %q is not supported (P-256, P-384 or P-521).", crv)
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, badParameter("key generation failed")
		}
		return k, nil
	}
	return nil, badParameter("kty %q is not supported (RSA, RSA-HSM, EC, EC-HSM).", kty)
}

func validOps(ops []string) *kvError {
	for _, op := range ops {
		if !validKeyOps[op] {
			return badParameter("Unknown key operation %q.", op)
		}
	}
	return nil
}

func createKey(c *call) (int, any, *kvError) {
	var b struct {
		Kty        string            `json:"kty"`
		KeySize    int               `json:"key_size"`
		Crv        string            `json:"crv"`
		KeyOps     []string          `json:"key_ops"`
		Attributes *reqAttrs         `json:"attributes"`
		Tags       map[string]string `json:"tags"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	if !objectNameRE.MatchString(c.rt.name) {
		return 0, nil, badParameter("The request URI contains an invalid name: %s", c.rt.name)
	}
	if kerr := validOps(b.KeyOps); kerr != nil {
		return 0, nil, kerr
	}
	key, kerr := generateKey(b.Kty, b.KeySize, b.Crv)
	if kerr != nil {
		return 0, nil, kerr
	}
	return c.storeKey(b.Kty, key.Public(), b.KeyOps, b.Attributes, b.Tags)
}

func (c *call) storeKey(kty string, pub crypto.PublicKey, ops []string, a *reqAttrs, tags map[string]string) (int, any, *kvError) {
	if len(ops) == 0 {
		ops = defaultKeyOps(kty)
	}
	var enabled *bool
	var nbf, exp *int64
	if a != nil {
		enabled, nbf, exp = a.Enabled, a.NotBefore, a.Expires
	}
	ver := newVersion(c.now, enabled, unixPtr(nbf), unixPtr(exp), tags, "")
	ver.key = &keyData{kty: kty, pub: pub, ops: slices.Clone(ops)}
	o, kerr := c.v.putVersion(kindKeys, c.rt.name, ver, false)
	if kerr != nil {
		return 0, nil, kerr
	}
	c.rt.version = ver.id
	return http.StatusOK, c.v.keyJSON(o, ver, true), nil
}

func importKey(c *call) (int, any, *kvError) {
	var b struct {
		Key        *jwk              `json:"key"`
		Hsm        bool              `json:"Hsm"`
		Attributes *reqAttrs         `json:"attributes"`
		Tags       map[string]string `json:"tags"`
	}
	var ops struct {
		Key struct {
			KeyOps []string `json:"key_ops"`
		} `json:"key"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	_ = json.Unmarshal(c.body, &ops)
	if !objectNameRE.MatchString(c.rt.name) {
		return 0, nil, badParameter("The request URI contains an invalid name: %s", c.rt.name)
	}
	if b.Key == nil {
		return 0, nil, badParameter("The parameter 'key' is required.")
	}
	if kerr := validOps(ops.Key.KeyOps); kerr != nil {
		return 0, nil, kerr
	}
	k := *b.Key
	kty := strings.TrimSuffix(k.Kty, "-HSM")
	k.Kty = kty
	pub, err := k.public()
	if err != nil {
		return 0, nil, badParameter("The key is not valid: %v", err)
	}
	if rk, ok := pub.(*rsa.PublicKey); ok && (rk.N.Cmp(big.NewInt(0)) == 0 || rk.N.BitLen() < 1024) {
		return 0, nil, badParameter("The RSA key is too small.")
	}
	if b.Hsm {
		kty += "-HSM"
	}
	return c.storeKey(kty, pub, ops.Key.KeyOps, b.Attributes, b.Tags)
}

func updateKey(c *call) (int, any, *kvError) {
	var b struct {
		KeyOps     []string        `json:"key_ops"`
		Tags       json.RawMessage `json:"tags"`
		Attributes *reqAttrs       `json:"attributes"`
	}
	if kerr := c.decode(&b); kerr != nil {
		return 0, nil, kerr
	}
	o := c.v.keys.get(c.rt.name)
	if o == nil {
		return 0, nil, notFound(kindKeys, c.rt.name, c.rt.version)
	}
	if o.managed {
		return 0, nil, managedConflict(kindKeys, o.name)
	}
	ver := o.version(c.rt.version)
	if ver == nil {
		return 0, nil, notFound(kindKeys, c.rt.name, c.rt.version)
	}
	if kerr := validOps(b.KeyOps); kerr != nil {
		return 0, nil, kerr
	}
	tags, tagsSet, kerr := parseTags(b.Tags)
	if kerr != nil {
		return 0, nil, kerr
	}
	if b.KeyOps != nil {
		ver.key.ops = slices.Clone(b.KeyOps)
	}
	applyUpdate(ver, b.Attributes, tags, tagsSet, nil, c.now)
	return http.StatusOK, c.v.keyJSON(o, ver, true), nil
}

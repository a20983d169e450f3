package push_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vaultsync/vaultsync/internal/push"
	"github.com/vaultsync/vaultsync/internal/push/pushtest"
)

// FuzzCertificatePEM feeds arbitrary tls.crt, tls.key and ca.crt to the certificate builder: it
// must never panic, must fail with one of its sentinels, and a bundle it builds starts with the
// private key.
func FuzzCertificatePEM(f *testing.F) {
	chain := pushtest.NewTLS("fuzz.example.test")
	f.Add(chain.Crt, chain.Key, chain.CA)
	f.Add(chain.Crt, chain.Key, []byte(nil))
	f.Add(chain.CA, chain.Key, chain.Crt)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), chain.Key, []byte(""))
	f.Add([]byte(""), []byte(""), []byte(""))
	f.Add(chain.Crt, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte(nil))
	f.Add(append([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), chain.Crt...), chain.Key, []byte(nil))
	f.Fuzz(func(t *testing.T, crt, key, ca []byte) {
		data := map[string][]byte{"tls.crt": crt, "tls.key": key}
		if ca != nil {
			data["ca.crt"] = ca
		}
		bundle, err := push.CertificatePEM("fuzz", data)
		if err != nil {
			if !errors.Is(err, push.ErrSourceKeyNotFound) && !errors.Is(err, push.ErrCertificateUnusable) {
				t.Fatalf("unclassified error: %v", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("the error quotes key material: %v", err)
			}
			return
		}
		if !strings.HasPrefix(bundle, "-----BEGIN PRIVATE KEY-----\n") {
			t.Fatalf("the bundle does not start with the key")
		}
	})
}

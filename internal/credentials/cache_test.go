package credentials

import (
	"errors"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/internal/keyvault/keyvaulttest"
)

func TestCacheLRU(t *testing.T) {
	g := NewWithT(t)
	c := NewCache(2)
	created := 0
	create := func() (azcore.TokenCredential, error) { created++; return &keyvaulttest.Credential{}, nil }
	a := Key{Method: MethodWorkloadIdentity, Namespace: "ns1", ServiceAccount: "a"}
	b := Key{Method: MethodWorkloadIdentity, Namespace: "ns1", ServiceAccount: "b"}
	d := Key{Method: MethodWorkloadIdentity, Namespace: "ns2", ServiceAccount: "d"}

	ca, err := c.GetOrCreate(a, create)
	g.Expect(err).NotTo(HaveOccurred())
	ca2, _ := c.GetOrCreate(a, create)
	g.Expect(ca2).To(BeIdenticalTo(ca))
	g.Expect(created).To(Equal(1))

	_, _ = c.GetOrCreate(b, create)
	_, _ = c.GetOrCreate(a, create) // a is now the most recently used
	_, _ = c.GetOrCreate(d, create) // evicts b
	g.Expect(c.Len()).To(Equal(2))
	g.Expect(created).To(Equal(3))
	ca3, _ := c.GetOrCreate(a, create)
	g.Expect(ca3).To(BeIdenticalTo(ca))
	_, _ = c.GetOrCreate(b, create)
	g.Expect(created).To(Equal(4)) // b was rebuilt; d evicted now

	g.Expect(c.Drop(b)).To(BeTrue())
	g.Expect(c.Drop(b)).To(BeFalse())
	g.Expect(c.Len()).To(Equal(1))

	_, _ = c.GetOrCreate(d, create)
	g.Expect(c.DropNamespace("ns1")).To(Equal(1))
	g.Expect(c.Len()).To(Equal(1))
	g.Expect(c.DropNamespace("ns2")).To(Equal(1))
	g.Expect(c.Len()).To(BeZero())

	boom := errors.New("boom")
	_, err = c.GetOrCreate(a, func() (azcore.TokenCredential, error) { return nil, boom })
	g.Expect(err).To(MatchError(boom))
	g.Expect(c.Len()).To(BeZero())

	g.Expect(NewCache(0).max).To(Equal(DefaultCacheSize))
}

func TestCacheConcurrentCreateKeepsOne(t *testing.T) {
	g := NewWithT(t)
	c := NewCache(10)
	key := testWI.Key()
	var wg sync.WaitGroup
	got := make([]azcore.TokenCredential, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = c.GetOrCreate(key, func() (azcore.TokenCredential, error) { return &keyvaulttest.Credential{}, nil })
		}()
	}
	wg.Wait()
	for _, cred := range got {
		g.Expect(cred).To(BeIdenticalTo(got[0]))
	}
	g.Expect(c.Len()).To(Equal(1))
}

func TestKeyString(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Key{TenantID: "a/b"}.String()).NotTo(Equal(Key{TenantID: "a", ClientID: "b"}.String()))
	g.Expect(testWI.Key().String()).To(Equal("WorkloadIdentity/" + tenantID + "/" + clientID + "/team-a/app////"))
	g.Expect(Fingerprint([]byte("ab"), []byte("c"))).NotTo(Equal(Fingerprint([]byte("a"), []byte("bc"))))
	g.Expect(Fingerprint([]byte("secret"))).To(HaveLen(32))
	g.Expect(Fingerprint([]byte("secret"))).NotTo(ContainSubstring("secret"))
}

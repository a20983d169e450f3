package events

import (
	"context"
	"fmt"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
)

func TestIndex(t *testing.T) {
	g := NewWithT(t)
	idx := NewIndex()
	idx.Add("ns1/app", []Ref{{"demo.vault.azure.net", "db-password"}, {"demo.vault.azure.net", "tls"}, {"Demo.Vault.Azure.Net", "DB-Password"}})
	idx.Add("ns2/web", []Ref{{"demo.vault.azure.net", "tls"}})
	idx.Add("ns3/all", []Ref{{"other.vault.azure.net", AnyObject}})

	g.Expect(idx.Lookup("demo.vault.azure.net", "db-password")).To(Equal([]string{"ns1/app"}))
	g.Expect(idx.Lookup("DEMO.vault.azure.net", "TLS")).To(Equal([]string{"ns1/app", "ns2/web"}))
	g.Expect(idx.Lookup("other.vault.azure.net", "anything")).To(Equal([]string{"ns3/all"}))
	g.Expect(idx.Lookup("demo.vault.azure.net", "unknown")).To(BeEmpty())
	g.Expect(idx.Len()).To(Equal(3))

	// Add replaces: ns1/app no longer reads tls.
	idx.Add("ns1/app", []Ref{{"demo.vault.azure.net", "db-password"}})
	g.Expect(idx.Lookup("demo.vault.azure.net", "tls")).To(Equal([]string{"ns2/web"}))
	idx.Add("ns3/all", []Ref{{"other.vault.azure.net", AnyObject}, {"other.vault.azure.net", "x"}})
	g.Expect(idx.Lookup("other.vault.azure.net", "x")).To(Equal([]string{"ns3/all"}), "no duplicate keys")

	idx.Remove("ns2/web")
	idx.Add("ns1/app", nil)
	g.Expect(idx.Lookup("demo.vault.azure.net", "tls")).To(BeEmpty())
	g.Expect(idx.Lookup("demo.vault.azure.net", "db-password")).To(BeEmpty())
	g.Expect(idx.Len()).To(Equal(1))
	g.Expect(idx.byRef).To(HaveLen(2), "no empty entries left behind")
}

func TestIndexSink(t *testing.T) {
	g := NewWithT(t)
	idx := NewIndex()
	idx.Add("ns/a", []Ref{{"demo.vault.azure.net", "db"}})
	idx.Add("ns/b", []Ref{{"demo.vault.azure.net", "db"}})
	var got []string
	sink := IndexSink(idx, func(_ context.Context, key string, ev Event) { got = append(got, key+"@"+ev.Version) })
	sink.Notify(context.Background(), Event{VaultHost: "demo.vault.azure.net", ObjectName: "DB", Version: "v2"})
	sink.Notify(context.Background(), Event{VaultHost: "other.vault.azure.net", ObjectName: "db"})
	g.Expect(got).To(Equal([]string{"ns/a@v2", "ns/b@v2"}))
}

func TestIndexTenThousand(t *testing.T) {
	g := NewWithT(t)
	idx := NewIndex()
	for i := range 10000 {
		idx.Add(fmt.Sprintf("ns%d/vs%d", i%50, i), []Ref{{"demo.vault.azure.net", fmt.Sprintf("obj-%d", i%2000)}, {"demo.vault.azure.net", "shared"}})
	}
	g.Expect(idx.Lookup("demo.vault.azure.net", "obj-7")).To(HaveLen(5))
	g.Expect(idx.Lookup("demo.vault.azure.net", "shared")).To(HaveLen(10000))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("ns0/vs%d", i*50)
				if w%2 == 0 {
					idx.Add(key, []Ref{{"demo.vault.azure.net", "moved"}})
				} else {
					_ = idx.Lookup("demo.vault.azure.net", "obj-1")
				}
			}
		}()
	}
	wg.Wait()
	g.Expect(idx.Lookup("demo.vault.azure.net", "moved")).To(HaveLen(200))
	g.Expect(idx.Len()).To(Equal(10000))
}

func BenchmarkIndexLookup(b *testing.B) {
	idx := NewIndex()
	for i := range 10000 {
		idx.Add(fmt.Sprintf("ns/vs%d", i), []Ref{{"demo.vault.azure.net", fmt.Sprintf("obj-%d", i)}})
	}
	b.ResetTimer()
	for i := range b.N {
		_ = idx.Lookup("demo.vault.azure.net", fmt.Sprintf("obj-%d", i%10000))
	}
}

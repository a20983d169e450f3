package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	. "github.com/onsi/gomega"
)

// tokenRecorder is a TokenObserver that remembers what it was told.
type tokenRecorder struct {
	mu   sync.Mutex
	seen []string // "method result"
}

func (r *tokenRecorder) ObserveTokenRequest(method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	result := "success"
	if err != nil {
		result = "failure"
	}
	r.seen = append(r.seen, method+" "+result)
}

func (r *tokenRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.seen...)
}

// scriptedCredential answers each GetToken with the next token of a script ("" = an error),
// repeating the last one.
type scriptedCredential struct {
	script []string
	calls  int
}

func (c *scriptedCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, err
	}
	tok := c.script[min(c.calls, len(c.script)-1)]
	c.calls++
	if tok == "" {
		return azcore.AccessToken{}, errors.New("AADSTS7000215: Invalid client secret provided")
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestCacheObservesTokenRequestsNotCacheHits(t *testing.T) {
	g := NewWithT(t)
	rec := &tokenRecorder{}
	c := NewCache(10).WithObserver(rec)
	inner := &scriptedCredential{script: []string{"t1", "t1", "t1", "", "t2", "t2"}}
	cred, err := c.GetOrCreate(Key{Method: MethodServicePrincipal, ClientID: "a"}, func() (azcore.TokenCredential, error) { return inner, nil })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.get()).To(BeEmpty(), "creating a credential requests no token")

	vault := policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
	for range 3 { // t1 from Entra, then twice from the credential's cache
		_, err := cred.GetToken(context.Background(), vault)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(rec.get()).To(Equal([]string{"servicePrincipal success"}))

	_, err = cred.GetToken(context.Background(), vault) // Entra refuses the renewal
	g.Expect(err).To(HaveOccurred())
	_, err = cred.GetToken(context.Background(), vault) // t2: a new token
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), vault) // t2 again: cached
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.get()).To(Equal([]string{"servicePrincipal success", "servicePrincipal failure", "servicePrincipal success"}))

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = cred.GetToken(canceled, vault)
	g.Expect(err).To(MatchError(context.Canceled))
	g.Expect(rec.get()).To(HaveLen(3), "a caller that gave up made no failed request")

	// The same token for another scope is a request of its own.
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.get()).To(HaveLen(4))
}

func TestCacheWithoutObserver(t *testing.T) {
	g := NewWithT(t)
	c := NewCache(10)
	cred, err := c.GetOrCreate(Key{Method: MethodAzureCLI}, func() (azcore.TokenCredential, error) {
		return &scriptedCredential{script: []string{"t1", ""}}, nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{})
	g.Expect(err).To(HaveOccurred())
}

// The workload identity credential with azidentity's token cache: one token request for many
// concurrent callers, and a refused exchange counted as a failure.
func TestCacheObservesWorkloadIdentityExchanges(t *testing.T) {
	g := NewWithT(t)
	entra := newFakeEntra(t)
	defer entra.Close()
	rec := &tokenRecorder{}
	c := NewCache(10).WithObserver(rec)
	vault := policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}

	wi := testWI
	wi.AuthorityHost = entra.URL + "/"
	cred, err := c.GetOrCreate(wi.Key(), func() (azcore.TokenCredential, error) {
		return NewWorkloadIdentityCredential(&fakeRequester{now: time.Now, life: time.Hour}, wi, entraOptions(entra))
	})
	g.Expect(err).NotTo(HaveOccurred())
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cred.GetToken(context.Background(), vault)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	posts, _ := entra.stats()
	g.Expect(posts).To(Equal(1))
	g.Expect(rec.get()).To(Equal([]string{"workloadIdentity success"}))

	entra.mu.Lock()
	entra.fail = "70021"
	entra.mu.Unlock()
	other := wi
	other.ServiceAccount = "stranger"
	cred, err = c.GetOrCreate(other.Key(), func() (azcore.TokenCredential, error) {
		return NewWorkloadIdentityCredential(&fakeRequester{now: time.Now, life: time.Hour}, other, entraOptions(entra))
	})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cred.GetToken(context.Background(), vault)
	g.Expect(err).To(MatchError(ErrFederatedCredentialMismatch))
	posts, _ = entra.stats()
	g.Expect(posts).To(Equal(2))
	g.Expect(rec.get()).To(Equal([]string{"workloadIdentity success", "workloadIdentity failure"}))
}

func TestKeyAuthMethod(t *testing.T) {
	g := NewWithT(t)
	for method, want := range map[string]string{
		MethodWorkloadIdentity: "workloadIdentity", MethodServicePrincipal: "servicePrincipal",
		MethodManagedIdentity: "managedIdentity", MethodOperatorIdentity: "operatorIdentity", MethodAzureCLI: "azureCLI",
	} {
		g.Expect(Key{Method: method}.AuthMethod()).To(Equal(want), fmt.Sprintf("method %s", method))
	}
}

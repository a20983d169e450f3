package credentials

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestKubeTokenRequester(t *testing.T) {
	expires := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		respond func(*authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
		want    error
	}{
		{name: "ok", respond: func(tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			out := tr.DeepCopy()
			out.Status = authenticationv1.TokenRequestStatus{Token: "minted", ExpirationTimestamp: metav1.NewTime(expires)}
			return out, nil
		}},
		{name: "not found", want: ErrServiceAccountNotFound, respond: func(*authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, "app")
		}},
		{name: "forbidden", want: ErrTokenRequestForbidden, respond: func(*authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts/token"}, "app", errors.New("rbac"))
		}},
		{name: "other", want: ErrTokenRequest, respond: func(*authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			return nil, apierrors.NewInternalError(errors.New("etcd"))
		}},
		{name: "empty", want: ErrTokenRequest, respond: func(tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			return tr.DeepCopy(), nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			cs := fake.NewClientset()
			var seen *authenticationv1.TokenRequest
			cs.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
				ca := a.(clienttesting.CreateAction)
				g.Expect(ca.GetSubresource()).To(Equal("token"))
				g.Expect(ca.GetNamespace()).To(Equal("team-a"))
				seen = ca.GetObject().(*authenticationv1.TokenRequest)
				out, err := tc.respond(seen)
				if out == nil {
					return true, nil, err
				}
				return true, out, err
			})
			tok, exp, err := NewKubeTokenRequester(cs).RequestToken(context.Background(), "team-a", "app", TokenAudience, TokenExpiration)
			g.Expect(seen).NotTo(BeNil())
			g.Expect(seen.Spec.Audiences).To(Equal([]string{"api://AzureADTokenExchange"}))
			g.Expect(*seen.Spec.ExpirationSeconds).To(Equal(int64(3600)))
			if tc.want != nil {
				g.Expect(err).To(MatchError(tc.want))
				g.Expect(err.Error()).To(ContainSubstring("team-a/app"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tok).To(Equal("minted"))
			g.Expect(exp.Equal(expires)).To(BeTrue())
		})
	}
}

package credentials

import (
	"context"
	"errors"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TokenRequester mints ServiceAccount tokens (TokenRequest API).
type TokenRequester interface {
	RequestToken(ctx context.Context, namespace, serviceAccount, audience string, expiration time.Duration) (token string, expiresAt time.Time, err error)
}

// NewKubeTokenRequester returns a TokenRequester that calls
// CoreV1().ServiceAccounts(namespace).CreateToken. Errors are *Error with ErrServiceAccountNotFound,
// ErrTokenRequestForbidden or ErrTokenRequest.
func NewKubeTokenRequester(cs kubernetes.Interface) TokenRequester {
	return kubeTokenRequester{cs: cs}
}

type kubeTokenRequester struct{ cs kubernetes.Interface }

func (k kubeTokenRequester) RequestToken(ctx context.Context, namespace, serviceAccount, audience string, expiration time.Duration) (string, time.Time, error) {
	seconds := int64(expiration / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: &seconds,
	}}
	out, err := k.cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		kind := ErrTokenRequest
		switch {
		case apierrors.IsNotFound(err):
			kind = ErrServiceAccountNotFound
		case apierrors.IsForbidden(err):
			kind = ErrTokenRequestForbidden
		}
		return "", time.Time{}, &Error{Kind: kind, Namespace: namespace, ServiceAccount: serviceAccount, Err: err}
	}
	if out == nil || out.Status.Token == "" {
		return "", time.Time{}, &Error{Kind: ErrTokenRequest, Namespace: namespace, ServiceAccount: serviceAccount,
			Err: errors.New("the API server returned no token")}
	}
	return out.Status.Token, out.Status.ExpirationTimestamp.Time, nil
}

package controlplane

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestSmoke starts the local control plane with the controller manager and
// checks what the other suites rely on: TokenRequest, the service-account
// issuer's OIDC documents, garbage collection, Deployment rollouts and kubectl.
func TestSmoke(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cp, err := Start(ctx, Options{ControllerManager: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer cp.Stop()
	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())

	// TokenRequest for a ServiceAccount, with the workload-identity audience.
	_, err = cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"api://AzureADTokenExchange"},
			ExpirationSeconds: ptr.To[int64](3600),
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(tr.Status.Token, ".")).To(Equal(2), "a JWT has three parts")

	// The issuer's discovery document and keys.
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	var oidc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	g.Expect(json.Unmarshal(raw, &oidc)).To(Succeed())
	g.Expect(oidc.Issuer).To(HavePrefix("https://127.0.0.1:"))
	g.Expect(oidc.JWKSURI).To(HaveSuffix("/openid/v1/jwks"))
	raw, err = cs.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	g.Expect(json.Unmarshal(raw, &jwks)).To(Succeed())
	g.Expect(jwks.Keys).NotTo(BeEmpty())

	// Garbage collection of a dependent Secret when its owner goes.
	owner, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "owner"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "owned", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
		}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.CoreV1().ConfigMaps("default").Delete(ctx, "owner", metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func() bool {
		_, err := cs.CoreV1().Secrets("default").Get(ctx, "owned", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the garbage collector deletes the owned Secret")

	// A Deployment gets a ReplicaSet from the deployment controller.
	labels := map[string]string{"app": "web"}
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() int {
		rs, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return -1
		}
		return len(rs.Items)
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(1))

	// kubectl, built from the same sources, talks to it.
	out, err := exec.CommandContext(ctx, cp.Kubectl(), "--kubeconfig", cp.Kubeconfig, "get", "secrets", "-n", "default", "-o", "name").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	out, err = exec.CommandContext(ctx, cp.Kubectl(), "--kubeconfig", cp.Kubeconfig, "version", "-o", "json").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(ContainSubstring(`"gitVersion": "v` + Version))
}

package emulator_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	. "github.com/onsi/gomega"

	"github.com/vaultsync/vaultsync/test/emulator"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// innerCode reads error.innererror.code of a Key Vault error response.
func innerCode(t *testing.T, err error) (string, string, int) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %T: %v", err, err)
	}
	m := rawResponse{body: readBody(t, re.RawResponse)}.json(t)
	inner := ""
	if e, ok := m["error"].(map[string]any); ok {
		if ie, ok := e["innererror"].(map[string]any); ok {
			inner, _ = ie["code"].(string)
		}
	}
	return re.ErrorCode, inner, re.StatusCode
}

func readBody(t *testing.T, r *http.Response) []byte {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

func TestSecretLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Secrets Officer"})
	g.Expect(vaultURL).To(Equal("https://" + vaultName + ".vault.azure.net"))
	c := secretsClient(t, vaultURL, secretCredential(t, clientID, secret))

	// set: a new version each time, 32 lower-hex ids
	set1, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: ptr("one"), ContentType: ptr("text/plain"),
		Tags: map[string]*string{"env": ptr("test")}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(set1.ID.Name()).To(Equal("db-password"))
	g.Expect(set1.ID.Version()).To(MatchRegexp(versionRE.String()))
	g.Expect(*set1.Attributes.RecoveryLevel).To(Equal("Recoverable+Purgeable"))
	g.Expect(*set1.Attributes.RecoverableDays).To(Equal(int32(90)))
	set2, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: ptr("two")}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(set2.ID.Version()).NotTo(Equal(set1.ID.Version()))

	// get latest (the client sends the trailing slash form) and by version
	latest, err := c.GetSecret(ctx, "db-password", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*latest.Value).To(Equal("two"))
	g.Expect(latest.ID.Version()).To(Equal(set2.ID.Version()))
	old, err := c.GetSecret(ctx, "db-password", set1.ID.Version(), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*old.Value).To(Equal("one"))
	g.Expect(*old.ContentType).To(Equal("text/plain"))
	g.Expect(*old.Tags["env"]).To(Equal("test"))

	// latest without the trailing slash
	tok := mint(t, name)
	r := raw(t, http.MethodGet, vaultURL+"/secrets/db-password?api-version=7.4", tok, "")
	g.Expect(r.status).To(Equal(http.StatusOK))
	g.Expect(r.json(t)["value"]).To(Equal("two"))
	g.Expect(r.json(t)["attributes"].(map[string]any)["created"]).To(BeNumerically(">", 1e9))

	// update properties, disable -> 403 Forbidden/SecretDisabled, enable again
	upd, err := c.UpdateSecretProperties(ctx, "db-password", set1.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		ContentType: ptr("application/json"), Tags: map[string]*string{"k": ptr("v")},
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false), Expires: ptr(time.Unix(2000000000, 0))}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*upd.ContentType).To(Equal("application/json"))
	g.Expect(upd.Attributes.Expires.Unix()).To(Equal(int64(2000000000)))
	_, err = c.GetSecret(ctx, "db-password", set1.ID.Version(), nil)
	code, inner, status := innerCode(t, err)
	g.Expect([]any{status, code, inner}).To(Equal([]any{403, "Forbidden", "SecretDisabled"}))
	_, err = c.UpdateSecretProperties(ctx, "db-password", set1.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(true)}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "db-password", set1.ID.Version(), nil)
	g.Expect(err).NotTo(HaveOccurred())

	// expired nbf/exp are informational
	_, err = c.SetSecret(ctx, "expired", azsecrets.SetSecretParameters{Value: ptr("x"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: ptr(time.Now().Add(-time.Hour))}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "expired", "", nil)
	g.Expect(err).NotTo(HaveOccurred())

	// not found
	_, err = c.GetSecret(ctx, "missing", "", nil)
	code, _, status = innerCode(t, err)
	g.Expect([]any{status, code}).To(Equal([]any{404, "SecretNotFound"}))
	_, err = c.GetSecret(ctx, "db-password", strings.Repeat("0", 32), nil)
	code, _, _ = innerCode(t, err)
	g.Expect(code).To(Equal("SecretNotFound"))

	// list: no values, ids without version
	var names []string
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		for _, s := range page.Value {
			names = append(names, s.ID.Name())
			g.Expect(s.ID.Version()).To(BeEmpty())
		}
	}
	g.Expect(names).To(Equal([]string{"db-password", "expired"}))

	// backup, delete, get deleted, list deleted, recover, purge, restore
	bk, err := c.BackupSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bk.Value).NotTo(BeEmpty())
	del, err := c.DeleteSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*del.RecoveryID).To(Equal(vaultURL + "/deletedsecrets/db-password"))
	g.Expect(del.ScheduledPurgeDate.Sub(*del.DeletedDate)).To(Equal(90 * 24 * time.Hour))
	_, err = c.GetSecret(ctx, "db-password", "", nil)
	code, _, _ = innerCode(t, err)
	g.Expect(code).To(Equal("SecretNotFound"))
	_, err = c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	code, inner, status = innerCode(t, err)
	g.Expect([]any{status, code, inner}).To(Equal([]any{409, "Conflict", "ObjectIsDeletedButRecoverable"}))
	gd, err := c.GetDeletedSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gd.ID.Version()).To(Equal(set2.ID.Version()))
	dp := c.NewListDeletedSecretPropertiesPager(nil)
	var deleted []string
	for dp.More() {
		page, err := dp.NextPage(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		for _, s := range page.Value {
			deleted = append(deleted, s.ID.Name())
		}
	}
	g.Expect(deleted).To(Equal([]string{"db-password"}))
	rec, err := c.RecoverDeletedSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.ID.Version()).To(Equal(set2.ID.Version()))
	got, err := c.GetSecret(ctx, "db-password", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*got.Value).To(Equal("two"))

	_, err = c.DeleteSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.PurgeDeletedSecret(ctx, "db-password", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(emu.Requests(emulator.LogFilter{Vault: vaultName, Operation: "PurgeDeletedSecret", Status: 204})).To(HaveLen(1))
	_, err = c.GetDeletedSecret(ctx, "db-password", nil)
	code, _, _ = innerCode(t, err)
	g.Expect(code).To(Equal("SecretNotFound"))

	res, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: bk.Value}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ID.Name()).To(Equal("db-password"))
	restored, err := c.GetSecret(ctx, "db-password", set1.ID.Version(), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*restored.Value).To(Equal("one"))
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: bk.Value}, nil)
	code, _, _ = innerCode(t, err)
	g.Expect(code).To(Equal("Conflict"))
}

func TestSecretVersionPaging(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Secrets User"})
	var want []string
	for i := range 60 {
		vi, err := emu.SetSecret(vaultName, "rotated", emulator.SecretVersion{Value: strings.Repeat("v", i+1)})
		g.Expect(err).NotTo(HaveOccurred())
		want = append(want, vi.Version)
	}
	c := secretsClient(t, vaultURL, secretCredential(t, clientID, secret))
	emu.ResetLog()
	var got []string
	pages := 0
	pager := c.NewListSecretPropertiesVersionsPager("rotated", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		pages++
		for _, s := range page.Value {
			got = append(got, s.ID.Version())
		}
	}
	g.Expect(got).To(Equal(want))
	g.Expect(pages).To(Equal(3))
	g.Expect(emu.Count(emulator.LogFilter{Vault: vaultName, Operation: "GetSecretVersions", Status: 200})).To(Equal(3))

	// the nextLink is absolute, carries api-version, $skiptoken and maxresults; maxresults is honoured
	tok := mint(t, name)
	r := raw(t, http.MethodGet, vaultURL+"/secrets/rotated/versions?api-version=2026-04-01&maxresults=7", tok, "")
	g.Expect(r.status).To(Equal(http.StatusOK))
	body := r.json(t)
	g.Expect(body["value"]).To(HaveLen(7))
	next, err := url.Parse(body["nextLink"].(string))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(next.Scheme + "://" + next.Host + next.Path).To(Equal(vaultURL + "/secrets/rotated/versions"))
	g.Expect(next.RawQuery).To(ContainSubstring("$skiptoken="))
	g.Expect(next.Query().Get("api-version")).To(Equal("2026-04-01"))
	g.Expect(next.Query().Get("maxresults")).To(Equal("7"))
	// the Go pager re-encodes $skiptoken as %24skiptoken
	q := next.Query()
	r2 := raw(t, http.MethodGet, vaultURL+"/secrets/rotated/versions?"+q.Encode(), tok, "")
	g.Expect(q.Encode()).To(ContainSubstring("%24skiptoken"))
	g.Expect(r2.status).To(Equal(http.StatusOK))
	items := r2.json(t)["value"].([]any)
	g.Expect(items).To(HaveLen(7))
	g.Expect(items[0].(map[string]any)["id"]).To(HaveSuffix(want[7]))
	g.Expect(raw(t, http.MethodGet, vaultURL+"/secrets/rotated/versions?api-version=1&maxresults=26", tok, "").status).To(Equal(400))
	g.Expect(raw(t, http.MethodGet, vaultURL+"/secrets/rotated/versions?api-version=1&maxresults=0", tok, "").status).To(Equal(400))
}

func TestSecretsUserCannotWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := ctxT(t)
	name, clientID, secret := secretIdentity(t)
	vaultName, vaultURL := newVault(t, emulator.RoleAssignment{Principal: name, Role: "Key Vault Reader"})
	_, err := emu.SetSecret(vaultName, "s", emulator.SecretVersion{Value: "v"})
	g.Expect(err).NotTo(HaveOccurred())
	c := secretsClient(t, vaultURL, secretCredential(t, clientID, secret))

	// Reader: metadata yes, values no
	pager := c.NewListSecretPropertiesPager(nil)
	page, err := pager.NextPage(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(page.Value).To(HaveLen(1))
	_, err = c.GetSecret(ctx, "s", "", nil)
	code, inner, status := innerCode(t, err)
	g.Expect([]any{status, code, inner}).To(Equal([]any{403, "Forbidden", "ForbiddenByRbac"}))
	_, err = c.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	_, inner, _ = innerCode(t, err)
	g.Expect(inner).To(Equal("ForbiddenByRbac"))

	// a role scoped to one secret
	g.Expect(emu.AddRoleAssignment(vaultName, emulator.RoleAssignment{Principal: clientID, Role: "Key Vault Secrets User", Scope: "secrets/s"})).To(Succeed())
	_, err = emu.SetSecret(vaultName, "other", emulator.SecretVersion{Value: "v"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "s", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetSecret(ctx, "other", "", nil)
	_, inner, _ = innerCode(t, err)
	g.Expect(inner).To(Equal("ForbiddenByRbac"))
	g.Expect(emu.Count(emulator.LogFilter{Vault: vaultName, Identity: name, Status: 403})).To(Equal(3))
}

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Client drives a running emulator through its admin API.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the admin base URL (the KV_EMULATOR_ADMIN value). The admin API is
// plain HTTP on loopback and is never proxied.
func NewClient(baseURL string) *Client {
	return &Client{base: baseURL, http: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}}
}

// APIError is a non-2xx answer of the admin API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kv-emulator admin: HTTP %d: %s", e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = string(data)
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// AddVault creates a vault.
func (c *Client) AddVault(ctx context.Context, v Vault) error {
	return c.do(ctx, http.MethodPost, "/admin/vaults", v, nil)
}

// SetSecret adds a secret version (create or rotate).
func (c *Client) SetSecret(ctx context.Context, vault, name string, sv SecretVersion) (VersionInfo, error) {
	var vi VersionInfo
	err := c.do(ctx, http.MethodPut, "/admin/vaults/"+esc(vault)+"/secrets/"+esc(name), sv, &vi)
	return vi, err
}

// UpdateSecret changes a secret version's properties (version "" = latest).
func (c *Client) UpdateSecret(ctx context.Context, vault, name, version string, u SecretUpdate) error {
	return c.do(ctx, http.MethodPatch, "/admin/vaults/"+esc(vault)+"/secrets/"+esc(name)+"?version="+url.QueryEscape(version), u, nil)
}

// SetSecretEnabled enables or disables a secret version (version "" = latest).
func (c *Client) SetSecretEnabled(ctx context.Context, vault, name, version string, enabled bool) error {
	return c.UpdateSecret(ctx, vault, name, version, SecretUpdate{Enabled: &enabled})
}

// Delete soft-deletes (and with purge, purges) an object; kind is "secrets", "keys" or "certificates".
func (c *Client) Delete(ctx context.Context, vault, kind, name string, purge bool) error {
	return c.do(ctx, http.MethodDelete, "/admin/vaults/"+esc(vault)+"/"+esc(kind)+"/"+esc(name)+"?purge="+strconv.FormatBool(purge), nil, nil)
}

// ImportCertificate adds a certificate version (generated or from PEM/PFX).
func (c *Client) ImportCertificate(ctx context.Context, vault string, cert Certificate) (VersionInfo, error) {
	var vi VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/vaults/"+esc(vault)+"/certificates/"+esc(cert.Name), cert, &vi)
	return vi, err
}

// CreateKey adds a key version.
func (c *Client) CreateKey(ctx context.Context, vault string, k Key) (VersionInfo, error) {
	var vi VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/vaults/"+esc(vault)+"/keys/"+esc(k.Name), k, &vi)
	return vi, err
}

// AddRoleAssignment grants a role on a vault.
func (c *Client) AddRoleAssignment(ctx context.Context, vault string, ra RoleAssignment) error {
	return c.do(ctx, http.MethodPost, "/admin/vaults/"+esc(vault)+"/roleAssignments", ra, nil)
}

// RemoveRoleAssignment revokes a role assignment.
func (c *Client) RemoveRoleAssignment(ctx context.Context, vault string, ra RoleAssignment) error {
	return c.do(ctx, http.MethodDelete, "/admin/vaults/"+esc(vault)+"/roleAssignments", ra, nil)
}

// AddIdentity adds an identity.
func (c *Client) AddIdentity(ctx context.Context, id Identity) error {
	return c.do(ctx, http.MethodPost, "/admin/identities", id, nil)
}

// AddFederatedCredential adds a federated credential to an identity (name, client id or object id).
func (c *Client) AddFederatedCredential(ctx context.Context, principal string, fc FederatedCredential) error {
	return c.do(ctx, http.MethodPost, "/admin/identities/"+esc(principal)+"/federatedCredentials", fc, nil)
}

// Faults reads the injected faults.
func (c *Client) Faults(ctx context.Context) (Faults, error) {
	var f Faults
	err := c.do(ctx, http.MethodGet, "/admin/faults", nil, &f)
	return f, err
}

// SetFaults replaces the injected faults.
func (c *Client) SetFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, http.MethodPut, "/admin/faults", f, nil)
}

// ClearFaults removes all faults.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/admin/faults", nil, nil)
}

// Log reads the request log entries matching f.
func (c *Client) Log(ctx context.Context, f LogFilter) ([]LogEntry, error) {
	q := url.Values{}
	for k, v := range map[string]string{"service": f.Service, "vault": f.Vault, "operation": f.Operation, "object": f.Object,
		"identity": f.Identity, "authMethod": f.AuthMethod} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Status != 0 {
		q.Set("status", strconv.Itoa(f.Status))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	var out []LogEntry
	err := c.do(ctx, http.MethodGet, "/admin/log?"+q.Encode(), nil, &out)
	return out, err
}

// ResetLog empties the request log.
func (c *Client) ResetLog(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/admin/log", nil, nil)
}

// Counters reads the aggregated request counters.
func (c *Client) Counters(ctx context.Context) ([]Counter, error) {
	var out []Counter
	err := c.do(ctx, http.MethodGet, "/admin/counters", nil, &out)
	return out, err
}

// MintToken asks for an access token for an identity.
func (c *Client) MintToken(ctx context.Context, tr TokenRequest) (Token, error) {
	var t Token
	err := c.do(ctx, http.MethodPost, "/admin/tokens", tr, &t)
	return t, err
}

// Env reads the environment a client process needs.
func (c *Client) Env(ctx context.Context) (map[string]string, error) {
	var m map[string]string
	err := c.do(ctx, http.MethodGet, "/admin/env", nil, &m)
	return m, err
}

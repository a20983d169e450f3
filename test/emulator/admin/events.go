package admin

import (
	"context"
	"net/http"
)

// Event delivery schemas of an EventSubscription.
const (
	SchemaEventGrid   = "EventGrid"
	SchemaCloudEvents = "CloudEvents"
)

// Key Vault event types the emulator publishes. New versions are published on every change;
// the expiry types only through PublishEvent (the emulator has no clock-driven expiry).
const (
	EventSecretNewVersionCreated      = "Microsoft.KeyVault.SecretNewVersionCreated"
	EventSecretNearExpiry             = "Microsoft.KeyVault.SecretNearExpiry"
	EventSecretExpired                = "Microsoft.KeyVault.SecretExpired"
	EventCertificateNewVersionCreated = "Microsoft.KeyVault.CertificateNewVersionCreated"
	EventCertificateNearExpiry        = "Microsoft.KeyVault.CertificateNearExpiry"
	EventCertificateExpired           = "Microsoft.KeyVault.CertificateExpired"
	EventKeyNewVersionCreated         = "Microsoft.KeyVault.KeyNewVersionCreated"
	EventKeyNearExpiry                = "Microsoft.KeyVault.KeyNearExpiry"
	EventKeyExpired                   = "Microsoft.KeyVault.KeyExpired"
)

// EventSubscription delivers Key Vault events to a webhook on loopback, like an Event Grid event
// subscription on the vault's system topic. When it is added the emulator performs the validation
// handshake of its schema; events are only delivered once it succeeded.
type EventSubscription struct {
	// Name identifies the subscription (unique).
	Name string `json:"name"`
	// Endpoint is the webhook URL, http or https on 127.0.0.1, ::1 or localhost.
	Endpoint string `json:"endpoint"`
	// Schema is EventGrid (default: a JSON array per delivery) or CloudEvents (one structured
	// application/cloudevents+json event per delivery).
	Schema string `json:"schema,omitempty"`
	// Vaults limits the subscription to these vault names (empty: every vault).
	Vaults []string `json:"vaults,omitempty"`
	// EventTypes limits the delivered types (empty: all Key Vault event types).
	EventTypes []string `json:"eventTypes,omitempty"`
	// Secret is sent with every request (handshake included): in the header SecretHeader and/or
	// the query parameter SecretQuery. With neither set, the header X-Vaultsync-Key is used.
	Secret       string `json:"secret,omitempty"`
	SecretHeader string `json:"secretHeader,omitempty"`
	SecretQuery  string `json:"secretQuery,omitempty"`
	// MaxAttempts per event (default 3; at most 10). Network errors, 408, 429 and 5xx are retried.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// RetryDelay is the wait before the second attempt, doubled for each further one (default 100ms).
	RetryDelay *Duration `json:"retryDelay,omitempty"`
	// CAFile trusts this CA for an https endpoint (besides the system roots); InsecureSkipVerify
	// skips verification (loopback test receivers with self-signed certificates).
	CAFile             string `json:"caFile,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// Subscription states.
const (
	SubscriptionValidating = "Validating"
	SubscriptionValidated  = "Validated"
	SubscriptionFailed     = "Failed"
)

// EventSubscriptionStatus is a subscription with its delivery counters. Secret is never echoed.
type EventSubscriptionStatus struct {
	EventSubscription
	// State is Validating, Validated or Failed (handshake failed; nothing is delivered).
	State string `json:"state"`
	// Error says why the handshake or the last delivery failed.
	Error string `json:"error,omitempty"`
	// Published counts events matched to the subscription.
	Published int `json:"published"`
	// Delivered counts events the endpoint acknowledged (2xx).
	Delivered int `json:"delivered"`
	// Failed counts events given up on (attempts exhausted, a non-retried status, queue full,
	// or the subscription not validated).
	Failed int `json:"failed"`
	// Attempts counts HTTP deliveries, retries included (the handshake not).
	Attempts int `json:"attempts"`
	// Pending counts events waiting for delivery.
	Pending int `json:"pending"`
	// LastStatus is the HTTP status of the last attempt (0: no response).
	LastStatus int `json:"lastStatus"`
}

// PublishEvent asks the emulator to publish one event about an existing object, e.g. a
// SecretNearExpiry that no clock would produce in a test.
type PublishEvent struct {
	// Type is a Key Vault event type (Event... constants).
	Type string `json:"type"`
	// Object is the secret, certificate or key name (its kind follows from Type).
	Object string `json:"object"`
	// Version defaults to the latest.
	Version string `json:"version,omitempty"`
}

// AddEventSubscription adds a subscription and waits for its validation handshake; the answer
// says whether it succeeded (State). A failed handshake is an error too.
func (c *Client) AddEventSubscription(ctx context.Context, s EventSubscription) (EventSubscriptionStatus, error) {
	var st EventSubscriptionStatus
	err := c.do(ctx, http.MethodPost, "/admin/eventSubscriptions", s, &st)
	return st, err
}

// RemoveEventSubscription removes a subscription; events not yet delivered are dropped.
func (c *Client) RemoveEventSubscription(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/admin/eventSubscriptions/"+esc(name), nil, nil)
}

// EventSubscriptions lists the subscriptions with their delivery counters.
func (c *Client) EventSubscriptions(ctx context.Context) ([]EventSubscriptionStatus, error) {
	var out []EventSubscriptionStatus
	err := c.do(ctx, http.MethodGet, "/admin/eventSubscriptions", nil, &out)
	return out, err
}

// PublishEvent publishes one event about an existing object of vault.
func (c *Client) PublishEvent(ctx context.Context, vault string, ev PublishEvent) error {
	return c.do(ctx, http.MethodPost, "/admin/vaults/"+esc(vault)+"/events", ev, nil)
}

package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// Aliases of the event wire types.
type (
	// EventSubscription delivers Key Vault events to a loopback webhook.
	EventSubscription = admin.EventSubscription
	// EventSubscriptionStatus is a subscription with its counters.
	EventSubscriptionStatus = admin.EventSubscriptionStatus
	// PublishEvent asks for one event about an existing object.
	PublishEvent = admin.PublishEvent
)

const (
	defaultSecretHeader  = "X-Vaultsync-Key"
	defaultMaxAttempts   = 3
	defaultRetryDelay    = 100 * time.Millisecond
	eventQueueSize       = 1000
	handshakeTimeout     = 5 * time.Second
	deliveryTimeout      = 10 * time.Second
	handshakeOrigin      = "eventgrid.azure.net"
	emulatedSubscription = "00000000-0000-0000-0000-00000000e1e1"
	emulatedGroup        = "kv-emulator"
)

// eventKinds maps each event type to the object kind it concerns.
var eventKinds = map[string]string{
	admin.EventSecretNewVersionCreated:      kindSecrets,
	admin.EventSecretNearExpiry:             kindSecrets,
	admin.EventSecretExpired:                kindSecrets,
	admin.EventCertificateNewVersionCreated: kindCertificates,
	admin.EventCertificateNearExpiry:        kindCertificates,
	admin.EventCertificateExpired:           kindCertificates,
	admin.EventKeyNewVersionCreated:         kindKeys,
	admin.EventKeyNearExpiry:                kindKeys,
	admin.EventKeyExpired:                   kindKeys,
}

var newVersionEvent = map[string]string{
	kindSecrets:      admin.EventSecretNewVersionCreated,
	kindCertificates: admin.EventCertificateNewVersionCreated,
	kindKeys:         admin.EventKeyNewVersionCreated,
}

var objectTypeNames = map[string]string{kindSecrets: "Secret", kindCertificates: "Certificate", kindKeys: "Key"}

// outEvent is one event to deliver.
type outEvent struct {
	id, typ, vault, topic, objectURL, objectType, name, version string
	at                                                          time.Time
	nbf, exp                                                    *time.Time
}

// eventHub owns the subscriptions and their delivery workers. Its lock is taken after e.mu, never
// before it.
type eventHub struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*subscription
}

func newEventHub(log *slog.Logger) *eventHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &eventHub{ctx: ctx, cancel: cancel, log: log, subs: map[string]*subscription{}}
}

func (h *eventHub) close() {
	h.cancel()
	h.wg.Wait()
}

// subscription is one webhook with its queue and counters.
type subscription struct {
	spec      EventSubscription
	client    *http.Client
	queue     chan outEvent
	validated chan struct{} // closed when the handshake finished
	cancel    context.CancelFunc

	mu     sync.Mutex
	status EventSubscriptionStatus
}

// validateEventSubscription checks a subscription and fills defaults; errors name the field.
func validateEventSubscription(s *EventSubscription, p, baseDir string) error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/ \t\r\n") {
		return fieldErr(p+".name", "required, without slashes or white space")
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(p+".endpoint", "%q is not an http(s) URL", s.Endpoint)
	}
	if !isLoopbackHost(u.Hostname()) {
		return fieldErr(p+".endpoint", "%q is not on loopback; events are only delivered to 127.0.0.1, ::1 or localhost", s.Endpoint)
	}
	switch s.Schema {
	case "":
		s.Schema = admin.SchemaEventGrid
	case admin.SchemaEventGrid, admin.SchemaCloudEvents:
	default:
		return fieldErr(p+".schema", "unknown schema %q (want %s or %s)", s.Schema, admin.SchemaEventGrid, admin.SchemaCloudEvents)
	}
	for i, t := range s.EventTypes {
		if _, ok := eventKinds[t]; !ok {
			return fieldErr(fmt.Sprintf("%s.eventTypes[%d]", p, i), "unknown Key Vault event type %q", t)
		}
	}
	for i, v := range s.Vaults {
		if !vaultNameRE.MatchString(v) {
			return fieldErr(fmt.Sprintf("%s.vaults[%d]", p, i), "%q is not a vault name", v)
		}
	}
	if s.Secret != "" && s.SecretHeader == "" && s.SecretQuery == "" {
		s.SecretHeader = defaultSecretHeader
	}
	if s.SecretHeader != "" && !headerNameRE.MatchString(s.SecretHeader) {
		return fieldErr(p+".secretHeader", "%q is not a header name", s.SecretHeader)
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = defaultMaxAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > 10 {
		return fieldErr(p+".maxAttempts", "must be between 1 and 10")
	}
	if s.RetryDelay == nil {
		s.RetryDelay = DurationOf(defaultRetryDelay)
	}
	if s.RetryDelay.Duration < 0 || s.RetryDelay.Duration > time.Minute {
		return fieldErr(p+".retryDelay", "must be between 0 and 1m")
	}
	if s.CAFile != "" && baseDir != "" && !filepath.IsAbs(s.CAFile) {
		s.CAFile = filepath.Join(baseDir, s.CAFile)
	}
	return nil
}

var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,100}$`)

// loopbackClient is an HTTP client that never uses a proxy and only dials loopback addresses.
func loopbackClient(s EventSubscription) (*http.Client, error) {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				if ip.IP.IsLoopback() {
					var d net.Dialer
					return d.DialContext(ctx, network, net.JoinHostPort(ip.IP.String(), port))
				}
			}
			return nil, fmt.Errorf("%s does not resolve to a loopback address", host)
		},
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify}, //nolint:gosec // opt-in for loopback test receivers
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("caFile: no PEM certificate")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// add starts a subscription: its worker runs the handshake, then delivers queued events.
func (h *eventHub) add(spec EventSubscription) (*subscription, error) {
	client, err := loopbackClient(spec)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return nil, errors.New("the emulator is closed")
	}
	if _, ok := h.subs[strings.ToLower(spec.Name)]; ok {
		return nil, fmt.Errorf("event subscription %q already exists", spec.Name)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	s := &subscription{spec: spec, client: client, queue: make(chan outEvent, eventQueueSize), validated: make(chan struct{}), cancel: cancel}
	s.status = EventSubscriptionStatus{EventSubscription: redacted(spec), State: admin.SubscriptionValidating}
	h.subs[strings.ToLower(spec.Name)] = s
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s.run(ctx, h.log)
	}()
	return s, nil
}

func redacted(s EventSubscription) EventSubscription {
	if s.Secret != "" {
		s.Secret = "<redacted>"
	}
	s.Vaults, s.EventTypes = slices.Clone(s.Vaults), slices.Clone(s.EventTypes)
	return s
}

func (h *eventHub) remove(name string) error {
	h.mu.Lock()
	s, ok := h.subs[strings.ToLower(name)]
	delete(h.subs, strings.ToLower(name))
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("event subscription %q: %w", name, ErrNotFound)
	}
	s.cancel()
	return nil
}

func (h *eventHub) list() []EventSubscriptionStatus {
	h.mu.Lock()
	subs := make([]*subscription, 0, len(h.subs))
	for _, s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	out := make([]EventSubscriptionStatus, 0, len(subs))
	for _, s := range subs {
		out = append(out, s.snapshot())
	}
	slices.SortFunc(out, func(a, b EventSubscriptionStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *subscription) snapshot() EventSubscriptionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Pending = len(s.queue)
	st.EventSubscription = redacted(s.spec)
	return st
}

func (s *subscription) wants(ev outEvent) bool {
	if len(s.spec.Vaults) > 0 && !slices.ContainsFunc(s.spec.Vaults, func(v string) bool { return strings.EqualFold(v, ev.vault) }) {
		return false
	}
	return len(s.spec.EventTypes) == 0 || slices.Contains(s.spec.EventTypes, ev.typ)
}

// publish queues ev for every interested subscription without blocking.
func (h *eventHub) publish(ev outEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		if !s.wants(ev) {
			continue
		}
		s.mu.Lock()
		s.status.Published++
		select {
		case s.queue <- ev:
		default:
			s.status.Failed++
			s.status.Error = "queue full: event dropped"
		}
		s.mu.Unlock()
	}
}

// run is the subscription's worker.
func (s *subscription) run(ctx context.Context, log *slog.Logger) {
	err := s.handshake(ctx)
	s.mu.Lock()
	if err != nil {
		s.status.State, s.status.Error = admin.SubscriptionFailed, "validation handshake failed: "+err.Error()
	} else {
		s.status.State = admin.SubscriptionValidated
	}
	s.mu.Unlock()
	close(s.validated)
	log.Info("event subscription", "name", s.spec.Name, "endpoint", redactURL(s.spec.Endpoint), "validated", err == nil)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.queue:
			if err != nil {
				s.mu.Lock()
				s.status.Failed++
				s.mu.Unlock()
				continue
			}
			s.deliver(ctx, ev, log)
		}
	}
}

// target returns the endpoint URL with the secret query parameter, if configured.
func (s *subscription) target() string {
	if s.spec.SecretQuery == "" || s.spec.Secret == "" {
		return s.spec.Endpoint
	}
	u, _ := url.Parse(s.spec.Endpoint)
	q := u.Query()
	q.Set(s.spec.SecretQuery, s.spec.Secret)
	u.RawQuery = q.Encode()
	return u.String()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid>"
	}
	u.RawQuery = ""
	return u.String()
}

func (s *subscription) newRequest(ctx context.Context, method string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.target(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if s.spec.SecretHeader != "" && s.spec.Secret != "" {
		req.Header.Set(s.spec.SecretHeader, s.spec.Secret)
	}
	req.Header.Set("aeg-subscription-name", strings.ToUpper(s.spec.Name))
	return req, nil
}

// handshake validates the endpoint like Event Grid: a SubscriptionValidationEvent whose code must
// come back (Event Grid schema), or an OPTIONS request whose origin must be allowed (CloudEvents).
// It retries like a delivery.
func (s *subscription) handshake(ctx context.Context) error {
	var last error
	delay := s.spec.RetryDelay.Duration
	for attempt := 1; attempt <= s.spec.MaxAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		retry, err := s.handshakeOnce(ctx)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return last
}

func (s *subscription) handshakeOnce(ctx context.Context) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if s.spec.Schema == admin.SchemaCloudEvents {
		req, err := s.newRequest(ctx, http.MethodOptions, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("WebHook-Request-Origin", handshakeOrigin)
		resp, err := s.client.Do(req)
		if err != nil {
			return true, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return retryable(resp.StatusCode), fmt.Errorf("OPTIONS answered %d", resp.StatusCode)
		}
		if got := resp.Header.Get("WebHook-Allowed-Origin"); got != "*" && !strings.EqualFold(got, handshakeOrigin) {
			return false, fmt.Errorf("WebHook-Allowed-Origin is %q, want %q or *", got, handshakeOrigin)
		}
		return false, nil
	}
	code := newGUID()
	body, _ := json.Marshal([]map[string]any{{
		"id": newGUID(), "topic": "/subscriptions/" + emulatedSubscription, "subject": "",
		"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"data":        map[string]any{"validationCode": code, "validationUrl": "https://" + handshakeOrigin + "/validate?id=" + code},
		"dataVersion": "2", "metadataVersion": "1",
	}})
	req, err := s.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	resp, err := s.client.Do(req)
	if err != nil {
		return true, err
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return retryable(resp.StatusCode), fmt.Errorf("validation event answered %d", resp.StatusCode)
	}
	var answer struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if json.Unmarshal(data, &answer) != nil || answer.ValidationResponse != code {
		return false, errors.New("the answer did not echo data.validationCode as validationResponse")
	}
	return false, nil
}

func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// payload renders ev in the subscription's schema.
func (s *subscription) payload(ev outEvent) (body []byte, contentType string) {
	data := map[string]any{
		"Id": ev.objectURL, "VaultName": ev.vault, "ObjectType": ev.objectType, "ObjectName": ev.name,
		"Version": ev.version, "NBF": unixOrNil(ev.nbf), "EXP": unixOrNil(ev.exp),
	}
	if s.spec.Schema == admin.SchemaCloudEvents {
		body, _ = json.Marshal(map[string]any{
			"specversion": "1.0", "id": ev.id, "source": ev.topic, "subject": ev.name, "type": ev.typ,
			"time": ev.at.UTC().Format(time.RFC3339Nano), "data": data,
		})
		return body, "application/cloudevents+json; charset=utf-8"
	}
	body, _ = json.Marshal([]map[string]any{{
		"id": ev.id, "topic": ev.topic, "subject": ev.name, "eventType": ev.typ,
		"eventTime": ev.at.UTC().Format(time.RFC3339Nano), "data": data, "dataVersion": "1", "metadataVersion": "1",
	}})
	return body, "application/json; charset=utf-8"
}

func unixOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

// deliver posts ev, retrying network errors, 408, 429 and 5xx with a doubling delay.
func (s *subscription) deliver(ctx context.Context, ev outEvent, log *slog.Logger) {
	body, ct := s.payload(ev)
	delay := s.spec.RetryDelay.Duration
	for attempt := 1; ; attempt++ {
		status, err := s.post(ctx, body, ct, attempt-1)
		s.mu.Lock()
		s.status.Attempts++
		s.status.LastStatus = status
		switch {
		case err == nil && status/100 == 2:
			s.status.Delivered++
			s.mu.Unlock()
			return
		case ctx.Err() != nil:
			s.mu.Unlock()
			return
		}
		if err != nil {
			s.status.Error = "delivery failed: " + err.Error()
		} else {
			s.status.Error = fmt.Sprintf("delivery answered %d", status)
		}
		give := attempt >= s.spec.MaxAttempts || (err == nil && !retryable(status))
		if give {
			s.status.Failed++
		}
		s.mu.Unlock()
		if give {
			log.Info("event not delivered", "subscription", s.spec.Name, "type", ev.typ, "object", ev.name, "status", status)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (s *subscription) post(ctx context.Context, body []byte, contentType string, deliveryCount int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := s.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-delivery-count", fmt.Sprint(deliveryCount))
	req.Header.Set("aeg-data-version", "1")
	req.Header.Set("aeg-metadata-version", "1")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// eventFor builds the event of a new version (or of PublishEvent) of an object of v.
func eventFor(v *vault, typ, kind, name string, ver *version) outEvent {
	return outEvent{
		id: newGUID(), typ: typ, vault: v.name,
		topic:      "/subscriptions/" + emulatedSubscription + "/resourceGroups/" + emulatedGroup + "/providers/Microsoft.KeyVault/vaults/" + v.name,
		objectURL:  v.objectURL(kind, name, ver.id),
		objectType: objectTypeNames[kind], name: name, version: ver.id, at: time.Now(),
		nbf: ver.nbf, exp: ver.exp,
	}
}

// versionAdded is the vault's hook for every new version of an object that is not managed by a
// certificate (a certificate's own version produces CertificateNewVersionCreated). Called with
// e.mu held; it only queues.
func (e *Emulator) versionAdded(v *vault, kind, name string, ver *version) {
	if e.events == nil {
		return
	}
	e.events.publish(eventFor(v, newVersionEvent[kind], kind, name, ver))
}

// AddEventSubscription adds a webhook subscription, performs its validation handshake and returns
// its status; a failed handshake leaves it listed as Failed and returns an error.
func (e *Emulator) AddEventSubscription(ctx context.Context, spec EventSubscription) (EventSubscriptionStatus, error) {
	if err := validateEventSubscription(&spec, "eventSubscription", e.baseDir); err != nil {
		return EventSubscriptionStatus{}, err
	}
	s, err := e.events.add(spec)
	if err != nil {
		return EventSubscriptionStatus{}, err
	}
	select {
	case <-s.validated:
	case <-ctx.Done():
		return s.snapshot(), ctx.Err()
	}
	st := s.snapshot()
	if st.State == admin.SubscriptionFailed {
		return st, errors.New(st.Error)
	}
	return st, nil
}

// RemoveEventSubscription removes a subscription; undelivered events are dropped.
func (e *Emulator) RemoveEventSubscription(name string) error { return e.events.remove(name) }

// EventSubscriptions lists the subscriptions with their counters, by name.
func (e *Emulator) EventSubscriptions() []EventSubscriptionStatus { return e.events.list() }

// PublishEvent publishes an event about an existing object of a vault (for the expiry events a
// test cannot wait for).
func (e *Emulator) PublishEvent(vaultName string, pe PublishEvent) error {
	kind, ok := eventKinds[pe.Type]
	if !ok {
		return fieldErr("type", "unknown Key Vault event type %q", pe.Type)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vaultName)
	if err != nil {
		return err
	}
	o := v.collection(kind).get(pe.Object)
	if o == nil || o.managed || o.version(pe.Version) == nil {
		return fmt.Errorf("%s %s/%s: %w", kind, pe.Object, pe.Version, ErrNotFound)
	}
	e.events.publish(eventFor(v, pe.Type, kind, o.name, o.version(pe.Version)))
	return nil
}

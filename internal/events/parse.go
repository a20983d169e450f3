package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vaultsync/vaultsync/internal/kvtypes"
)

// Key Vault event types (Event Grid's eventType, CloudEvents' type).
const (
	TypeSecretNewVersionCreated      = "Microsoft.KeyVault.SecretNewVersionCreated"
	TypeSecretNearExpiry             = "Microsoft.KeyVault.SecretNearExpiry"
	TypeSecretExpired                = "Microsoft.KeyVault.SecretExpired"
	TypeCertificateNewVersionCreated = "Microsoft.KeyVault.CertificateNewVersionCreated"
	TypeCertificateNearExpiry        = "Microsoft.KeyVault.CertificateNearExpiry"
	TypeCertificateExpired           = "Microsoft.KeyVault.CertificateExpired"
	TypeKeyNewVersionCreated         = "Microsoft.KeyVault.KeyNewVersionCreated"
	TypeKeyNearExpiry                = "Microsoft.KeyVault.KeyNearExpiry"
	TypeKeyExpired                   = "Microsoft.KeyVault.KeyExpired"

	// TypeSubscriptionValidation is the Event Grid schema's handshake event.
	TypeSubscriptionValidation = "Microsoft.EventGrid.SubscriptionValidationEvent"
)

// knownTypes maps every event type vaultsync acts on to the object type it concerns.
var knownTypes = map[string]kvtypes.ObjectType{
	TypeSecretNewVersionCreated:      kvtypes.TypeSecret,
	TypeSecretNearExpiry:             kvtypes.TypeSecret,
	TypeSecretExpired:                kvtypes.TypeSecret,
	TypeCertificateNewVersionCreated: kvtypes.TypeCertificate,
	TypeCertificateNearExpiry:        kvtypes.TypeCertificate,
	TypeCertificateExpired:           kvtypes.TypeCertificate,
	TypeKeyNewVersionCreated:         kvtypes.TypeKey,
	TypeKeyNearExpiry:                kvtypes.TypeKey,
	TypeKeyExpired:                   kvtypes.TypeKey,
}

// KnownType reports whether vaultsync acts on events of type t.
func KnownType(t string) bool {
	_, ok := knownTypes[t]
	return ok
}

// Schemas of a delivery.
const (
	SchemaEventGrid   = "EventGrid"
	SchemaCloudEvents = "CloudEvents"
)

// Content types of deliveries.
const (
	ContentTypeJSON             = "application/json"
	ContentTypeCloudEvent       = "application/cloudevents+json"
	ContentTypeCloudEventsBatch = "application/cloudevents-batch+json"
)

// Event is one Key Vault event, reduced to what decides which VaultSecrets to refresh. It is a hint:
// the object is always read again from Key Vault, never taken from the event.
type Event struct {
	// Type is the full event type, e.g. TypeSecretNewVersionCreated.
	Type string
	// VaultHost is the lower-case vault host, e.g. demo.vault.azure.net.
	VaultHost string
	// ObjectType is secret, certificate or key.
	ObjectType kvtypes.ObjectType
	// ObjectName is the object's name as Key Vault reported it.
	ObjectName string
	// Version is the object version the event is about (may be empty).
	Version string
	// ID is the event id; Source is the topic (Event Grid) or source (CloudEvents).
	ID     string
	Source string
	// Time is when the event happened (zero when the delivery did not say).
	Time time.Time
	// NotBefore and Expires are the object's nbf and exp attributes, when given.
	NotBefore, Expires *time.Time
}

// Batch is a parsed delivery.
type Batch struct {
	// Schema is SchemaEventGrid or SchemaCloudEvents.
	Schema string
	// ValidationCode is set when the delivery is an Event Grid subscription validation.
	ValidationCode string
	// Events are the Key Vault events vaultsync acts on, in delivery order.
	Events []Event
	// Ignored holds the types of events vaultsync does not act on.
	Ignored []string
	// Invalid counts Key Vault events whose data named no usable vault or object.
	Invalid int
}

// Parse errors. Handlers answer both with 400 (ErrUnsupportedMediaType: 415).
var (
	ErrMalformed            = errors.New("malformed delivery")
	ErrUnsupportedMediaType = errors.New("unsupported content type")
)

// maxEvents bounds the events of one delivery (Event Grid sends at most 5,000).
const maxEvents = 5000

// Parse decodes a delivery body of the given Content-Type: the Event Grid schema (application/json,
// an array of events) or CloudEvents 1.0 in structured mode (application/cloudevents+json, one
// event; application/cloudevents-batch+json, an array). An application/json body may also hold
// CloudEvents, recognised by their specversion. It never panics, whatever the input.
func Parse(contentType string, body []byte) (*Batch, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrUnsupportedMediaType, contentType)
	}
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	switch mt {
	case ContentTypeCloudEvent:
		if len(body) == 0 || body[0] != '{' {
			return nil, fmt.Errorf("%w: %s must hold one JSON object", ErrMalformed, mt)
		}
		raws = []json.RawMessage{body}
	case ContentTypeCloudEventsBatch, ContentTypeJSON:
		switch {
		case len(body) > 0 && body[0] == '[':
			if err := json.Unmarshal(body, &raws); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, jsonError(err)) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
			}
		case len(body) > 0 && body[0] == '{' && mt == ContentTypeJSON:
			raws = []json.RawMessage{body}
		default:
			return nil, fmt.Errorf("%w: the body must be a JSON array of events", ErrMalformed)
		}
	default:
		return nil, fmt.Errorf("%w %q (want %s, %s or %s)", ErrUnsupportedMediaType, mt, ContentTypeJSON, ContentTypeCloudEvent, ContentTypeCloudEventsBatch)
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrMalformed)
	}
	if len(raws) > maxEvents {
		return nil, fmt.Errorf("%w: more than %d events", ErrMalformed, maxEvents)
	}
	b := &Batch{}
	for i, raw := range raws {
		env, err := decodeEnvelope(raw, mt)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err) //nolint:errorlint // %v on purpose: the sentinel classifies, the cause is text only (errors.As downstream must not see it)
		}
		if b.Schema == "" {
			b.Schema = env.schema
		} else if b.Schema != env.schema {
			return nil, fmt.Errorf("%w: event %d: mixes the Event Grid and CloudEvents schemas", ErrMalformed, i)
		}
		if env.typ == TypeSubscriptionValidation {
			if env.schema != SchemaEventGrid {
				return nil, fmt.Errorf("%w: event %d: a subscription validation event in CloudEvents", ErrMalformed, i)
			}
			var vd struct {
				ValidationCode string `json:"validationCode"`
			}
			if err := json.Unmarshal(env.data, &vd); err != nil || vd.ValidationCode == "" {
				return nil, fmt.Errorf("%w: event %d: subscription validation without data.validationCode", ErrMalformed, i)
			}
			if b.ValidationCode == "" {
				b.ValidationCode = vd.ValidationCode
			}
			continue
		}
		objType, known := knownTypes[env.typ]
		if !known {
			b.Ignored = append(b.Ignored, env.typ)
			continue
		}
		ev, ok := keyVaultEvent(env, objType)
		if !ok {
			b.Invalid++
			continue
		}
		b.Events = append(b.Events, ev)
	}
	return b, nil
}

// envelope is the schema-independent part of one event.
type envelope struct {
	schema  string
	id      string
	source  string
	subject string
	typ     string
	time    time.Time
	data    json.RawMessage
}

// eventGridEvent is the Event Grid schema.
type eventGridEvent struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Subject     string          `json:"subject"`
	EventType   string          `json:"eventType"`
	EventTime   string          `json:"eventTime"`
	Data        json.RawMessage `json:"data"`
	DataVersion string          `json:"dataVersion"`
}

// cloudEvent is CloudEvents 1.0 in JSON (structured mode).
type cloudEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
	DataBase64  string          `json:"data_base64"`
}

func decodeEnvelope(raw json.RawMessage, mediaType string) (envelope, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil {
		return envelope{}, errors.New("not a JSON object")
	}
	_, isCE := probe["specversion"]
	if mediaType != ContentTypeJSON || isCE {
		var ce cloudEvent
		if err := json.Unmarshal(raw, &ce); err != nil {
			return envelope{}, jsonError(err)
		}
		switch {
		case ce.SpecVersion != "1.0":
			return envelope{}, fmt.Errorf("specversion %q is not 1.0", ce.SpecVersion)
		case ce.ID == "" || ce.Source == "" || ce.Type == "":
			return envelope{}, errors.New("a CloudEvent needs id, source and type")
		case ce.DataBase64 != "":
			return envelope{}, errors.New("data_base64 is not supported for Key Vault events")
		}
		t, err := parseTime(ce.Time)
		if err != nil {
			return envelope{}, err
		}
		return envelope{schema: SchemaCloudEvents, id: ce.ID, source: ce.Source, subject: ce.Subject, typ: ce.Type, time: t, data: ce.Data}, nil
	}
	var eg eventGridEvent
	if err := json.Unmarshal(raw, &eg); err != nil {
		return envelope{}, jsonError(err)
	}
	if eg.ID == "" || eg.EventType == "" {
		return envelope{}, errors.New("an Event Grid event needs id and eventType")
	}
	t, err := parseTime(eg.EventTime)
	if err != nil {
		return envelope{}, err
	}
	return envelope{schema: SchemaEventGrid, id: eg.ID, source: eg.Topic, subject: eg.Subject, typ: eg.EventType, time: t, data: eg.Data}, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not RFC 3339", s)
	}
	return t, nil
}

// keyVaultData is the data of every Key Vault event. Go's decoder matches keys case-insensitively,
// so both the documented Id/VaultName/... and camelCase spellings work.
type keyVaultData struct {
	ID         string          `json:"Id"`
	VaultName  string          `json:"VaultName"`
	ObjectType string          `json:"ObjectType"`
	ObjectName string          `json:"ObjectName"`
	Version    string          `json:"Version"`
	NBF        json.RawMessage `json:"NBF"`
	EXP        json.RawMessage `json:"EXP"`
}

var (
	objectNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionRE    = regexp.MustCompile(`^[0-9A-Za-z]{0,64}$`)
	vaultNameRE  = regexp.MustCompile(`^[0-9A-Za-z-]{1,63}$`)
	hostRE       = regexp.MustCompile(`^[0-9a-z.-]{1,253}(:[0-9]{1,5})?$`)
)

// DefaultVaultDomain is appended to VaultName when an event has no object id URL.
const DefaultVaultDomain = "vault.azure.net"

// keyVaultEvent extracts the vault host, object name and version: from data.Id when it is a
// vault object URL, else from data.VaultName (+ DefaultVaultDomain) and data.ObjectName or the
// subject.
func keyVaultEvent(env envelope, objType kvtypes.ObjectType) (Event, bool) {
	var d keyVaultData
	if len(env.data) == 0 || json.Unmarshal(env.data, &d) != nil {
		return Event{}, false
	}
	ev := Event{Type: env.typ, ObjectType: objType, ID: env.id, Source: env.source, Time: env.time,
		ObjectName: d.ObjectName, Version: d.Version}
	if host, name, version, ok := parseObjectID(d.ID); ok {
		ev.VaultHost = host
		if ev.ObjectName == "" {
			ev.ObjectName = name
		}
		if ev.Version == "" {
			ev.Version = version
		}
	} else if vaultNameRE.MatchString(d.VaultName) {
		ev.VaultHost = strings.ToLower(d.VaultName) + "." + DefaultVaultDomain
	}
	if ev.ObjectName == "" {
		ev.ObjectName = env.subject
	}
	if ev.VaultHost == "" || !objectNameRE.MatchString(ev.ObjectName) || !versionRE.MatchString(ev.Version) {
		return Event{}, false
	}
	ev.NotBefore, ev.Expires = unixField(d.NBF), unixField(d.EXP)
	return ev, true
}

// parseObjectID splits https://{host}/{secrets|certificates|keys}/{name}[/{version}].
func parseObjectID(id string) (host, name, version string, ok bool) {
	if id == "" {
		return "", "", "", false
	}
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return "", "", "", false
	}
	host = strings.ToLower(u.Host)
	if !hostRE.MatchString(host) {
		return "", "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", "", false
	}
	switch parts[0] {
	case "secrets", "certificates", "keys":
	default:
		return "", "", "", false
	}
	name = parts[1]
	if len(parts) == 3 {
		version = parts[2]
	}
	if !objectNameRE.MatchString(name) || !versionRE.MatchString(version) {
		return "", "", "", false
	}
	return host, name, version, true
}

// unixField reads Unix seconds given as a number or a numeric string; anything else is nil.
func unixField(raw json.RawMessage) *time.Time {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1<<40 {
		return nil
	}
	t := time.Unix(int64(f), 0).UTC()
	return &t
}

// jsonError shortens decoder errors (they never quote the body).
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong JSON type (%s)", te.Field, te.Value)
	}
	return errors.New("invalid JSON")
}

package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// maxEntraBody bounds how much of a token error response is read.
const maxEntraBody = 64 << 10

var aadstsCode = regexp.MustCompile(`AADSTS(\d+)`)

// EntraFailure describes a failed token request: the Entra error number ("70021"), the HTTP
// status of the token endpoint (0 when none arrived) and the first line of Entra's description
// without trace or correlation ids. It never returns a token.
func EntraFailure(err error) (code string, status int, message string) {
	if err == nil {
		return "", 0, ""
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) && authErr.RawResponse != nil {
		status = authErr.RawResponse.StatusCode
		if raw, perr := azruntime.Payload(authErr.RawResponse); perr == nil && len(raw) <= maxEntraBody {
			var doc struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				Codes       []int  `json:"error_codes"`
			}
			if json.Unmarshal(raw, &doc) == nil {
				message = firstLine(aadstsPrefix.ReplaceAllString(doc.Description, ""))
				if len(doc.Codes) > 0 {
					return strconv.Itoa(doc.Codes[0]), status, message
				}
				if m := aadstsCode.FindStringSubmatch(doc.Description); m != nil {
					return m[1], status, message
				}
				if message == "" {
					message = doc.Error
				}
				return "", status, message
			}
		}
	}
	text := err.Error()
	if m := aadstsCode.FindStringSubmatch(text); m != nil {
		code = m[1]
	}
	return code, status, firstLine(text)
}

var aadstsPrefix = regexp.MustCompile(`^\s*AADSTS\d+:\s*`)

// firstLine keeps the first line of s without trace ids, bounded to 300 bytes.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	for _, cut := range []string{"\r", "\n", " Trace ID:"} {
		if i := strings.Index(s, cut); i >= 0 {
			s = s[:i]
		}
	}
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// claimsOf reads the issuer, subject and audience of a JWT without verifying it (it is our own
// service-account token, read for diagnostics only). It returns nil when tok is not a JWT.
func claimsOf(tok string) *Claims {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var doc struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &doc) != nil {
		return nil
	}
	c := &Claims{Issuer: doc.Iss, Subject: doc.Sub}
	var one string
	var many []string
	switch {
	case json.Unmarshal(doc.Aud, &one) == nil:
		c.Audience = one
	case json.Unmarshal(doc.Aud, &many) == nil:
		c.Audience = strings.Join(many, ",")
	}
	return c
}

// federationCodes are Entra ID's answers to a federated assertion that no federated credential of
// the application or managed identity matches: the generic 70021, and since late 2023 the codes
// naming the claim that failed (issuer, audience, subject, subject matching only ignoring case).
var federationCodes = map[string]bool{"70021": true, "700211": true, "700212": true, "700213": true, "7002138": true}

// IsFederationMismatch reports whether code (e.g. "700213") says that no federated credential
// matches the presented assertion.
func IsFederationMismatch(code string) bool { return federationCodes[code] }

// federationFailure turns Entra's federated credential mismatches into ErrFederatedCredentialMismatch
// carrying the code, Entra's description and the claims of the token that was presented; other
// errors are returned unchanged.
func federationFailure(err error, clientID, namespace, serviceAccount, presented string) error {
	code, _, msg := EntraFailure(err)
	if !IsFederationMismatch(code) {
		return err
	}
	return &Error{Kind: ErrFederatedCredentialMismatch, Namespace: namespace, ServiceAccount: serviceAccount,
		ClientID: clientID, Claims: claimsOf(presented), AADSTS: code, Detail: msg, Err: err}
}

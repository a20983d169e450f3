package emulator

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/vaultsync/vaultsync/test/emulator/admin"
)

// adminHandler serves the admin API (JSON) and the managed identity endpoint, loopback only.
func (e *Emulator) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /msi/token", e.serveManagedIdentity)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /admin/env", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, e.Env()) })
	mux.HandleFunc("GET /admin/ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(e.CAPEM())
	})
	mux.HandleFunc("POST /admin/vaults", func(w http.ResponseWriter, r *http.Request) {
		var v admin.Vault
		if decodeAdmin(w, r, &v) {
			adminReply(w, http.StatusCreated, nil, e.AddVault(v))
		}
	})
	mux.HandleFunc("PUT /admin/vaults/{vault}/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		var sv admin.SecretVersion
		if decodeAdmin(w, r, &sv) {
			vi, err := e.SetSecret(r.PathValue("vault"), r.PathValue("name"), sv)
			adminReply(w, http.StatusOK, vi, err)
		}
	})
	mux.HandleFunc("PATCH /admin/vaults/{vault}/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		var u admin.SecretUpdate
		if decodeAdmin(w, r, &u) {
			adminReply(w, http.StatusNoContent, nil, e.UpdateSecret(r.PathValue("vault"), r.PathValue("name"), r.URL.Query().Get("version"), u))
		}
	})
	mux.HandleFunc("DELETE /admin/vaults/{vault}/{kind}/{name}", func(w http.ResponseWriter, r *http.Request) {
		purge, _ := strconv.ParseBool(r.URL.Query().Get("purge"))
		kind := r.PathValue("kind")
		if kind != kindSecrets && kind != kindKeys && kind != kindCertificates {
			adminReply(w, 0, nil, errors.New("kind must be secrets, keys or certificates"))
			return
		}
		adminReply(w, http.StatusNoContent, nil, e.deleteObject(r.PathValue("vault"), kind, r.PathValue("name"), purge))
	})
	mux.HandleFunc("POST /admin/vaults/{vault}/certificates/{name}", func(w http.ResponseWriter, r *http.Request) {
		var c admin.Certificate
		if decodeAdmin(w, r, &c) {
			c.Name = r.PathValue("name")
			vi, err := e.ImportCertificate(r.PathValue("vault"), c)
			adminReply(w, http.StatusOK, vi, err)
		}
	})
	mux.HandleFunc("POST /admin/vaults/{vault}/keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		var k admin.Key
		if decodeAdmin(w, r, &k) {
			k.Name = r.PathValue("name")
			vi, err := e.CreateKey(r.PathValue("vault"), k)
			adminReply(w, http.StatusOK, vi, err)
		}
	})
	mux.HandleFunc("POST /admin/vaults/{vault}/roleAssignments", func(w http.ResponseWriter, r *http.Request) {
		var ra admin.RoleAssignment
		if decodeAdmin(w, r, &ra) {
			adminReply(w, http.StatusNoContent, nil, e.AddRoleAssignment(r.PathValue("vault"), ra))
		}
	})
	mux.HandleFunc("DELETE /admin/vaults/{vault}/roleAssignments", func(w http.ResponseWriter, r *http.Request) {
		var ra admin.RoleAssignment
		if decodeAdmin(w, r, &ra) {
			adminReply(w, http.StatusNoContent, nil, e.RemoveRoleAssignment(r.PathValue("vault"), ra))
		}
	})
	mux.HandleFunc("POST /admin/identities", func(w http.ResponseWriter, r *http.Request) {
		var id admin.Identity
		if decodeAdmin(w, r, &id) {
			adminReply(w, http.StatusCreated, nil, e.AddIdentity(id))
		}
	})
	mux.HandleFunc("POST /admin/identities/{principal}/federatedCredentials", func(w http.ResponseWriter, r *http.Request) {
		var fc admin.FederatedCredential
		if decodeAdmin(w, r, &fc) {
			adminReply(w, http.StatusCreated, nil, e.AddFederatedCredential(r.PathValue("principal"), fc))
		}
	})
	mux.HandleFunc("GET /admin/eventSubscriptions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.EventSubscriptions())
	})
	mux.HandleFunc("POST /admin/eventSubscriptions", func(w http.ResponseWriter, r *http.Request) {
		var s admin.EventSubscription
		if decodeAdmin(w, r, &s) {
			st, err := e.AddEventSubscription(r.Context(), s)
			adminReply(w, http.StatusCreated, st, err)
		}
	})
	mux.HandleFunc("DELETE /admin/eventSubscriptions/{name}", func(w http.ResponseWriter, r *http.Request) {
		adminReply(w, http.StatusNoContent, nil, e.RemoveEventSubscription(r.PathValue("name")))
	})
	mux.HandleFunc("POST /admin/vaults/{vault}/events", func(w http.ResponseWriter, r *http.Request) {
		var pe admin.PublishEvent
		if decodeAdmin(w, r, &pe) {
			adminReply(w, http.StatusNoContent, nil, e.PublishEvent(r.PathValue("vault"), pe))
		}
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, e.Faults()) })
	mux.HandleFunc("PUT /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f admin.Faults
		if decodeAdmin(w, r, &f) {
			adminReply(w, http.StatusNoContent, nil, e.SetFaults(f))
		}
	})
	mux.HandleFunc("DELETE /admin/faults", func(w http.ResponseWriter, _ *http.Request) {
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/log", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r)
		if err != nil {
			adminReply(w, 0, nil, err)
			return
		}
		entries := e.Requests(f)
		if entries == nil {
			entries = []admin.LogEntry{}
		}
		writeJSON(w, http.StatusOK, entries)
	})
	mux.HandleFunc("DELETE /admin/log", func(w http.ResponseWriter, _ *http.Request) {
		e.ResetLog()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/counters", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, e.Counters()) })
	mux.HandleFunc("POST /admin/tokens", func(w http.ResponseWriter, r *http.Request) {
		var tr admin.TokenRequest
		if decodeAdmin(w, r, &tr) {
			t, err := e.MintToken(tr)
			adminReply(w, http.StatusOK, t, err)
		}
	})
	return loopbackOnly(mux)
}

func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil || !isLoopbackHost(host) {
			http.Error(w, "loopback only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, admin.Error{Error: "invalid JSON body: " + err.Error()})
		return false
	}
	return true
}

func adminReply(w http.ResponseWriter, status int, body any, err error) {
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeJSON(w, code, admin.Error{Error: err.Error()})
		return
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func filterFromQuery(r *http.Request) (admin.LogFilter, error) {
	q := r.URL.Query()
	f := admin.LogFilter{Service: q.Get("service"), Vault: q.Get("vault"), Operation: q.Get("operation"), Object: q.Get("object"),
		Identity: q.Get("identity"), AuthMethod: q.Get("authMethod")}
	if s := q.Get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, errors.New("status must be a number")
		}
		f.Status = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, errors.New("since must be RFC 3339")
		}
		f.Since = t
	}
	return f, nil
}

// Command web is the tiny image of the node agent's tests: an HTTP server
// on :8080 whose health, readiness and file system the test drives.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	var healthy, ready atomic.Bool
	healthy.Store(true)
	ready.Store(true)
	mux := http.NewServeMux()
	status := func(ok bool, w http.ResponseWriter) {
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { status(healthy.Load(), w) })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { status(ready.Load(), w) })
	mux.HandleFunc("/fail", func(http.ResponseWriter, *http.Request) { healthy.Store(false) })
	mux.HandleFunc("/unready", func(http.ResponseWriter, *http.Request) { ready.Store(false) })
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) {
		host, _ := os.Hostname()
		_ = json.NewEncoder(w).Encode(map[string]any{
			"hostname": host, "uid": os.Getuid(), "gid": os.Getgid(), "groups": groups(), "env": os.Environ(),
		})
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte("x"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
		}
	})
	if err := http.ListenAndServe(":8080", mux); err != nil {
		panic(err)
	}
}

func groups() []int {
	g, _ := os.Getgroups()
	return g
}

// Package controllers holds the reconcilers of vaultsync. They decide what to
// do; talking to Azure lives in internal/keyvault and internal/credentials,
// turning fetched objects into Secret data in internal/render, and writing
// Secrets in internal/secrets.
package controllers

import (
	"flag"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LabelManaged marks every Secret that vaultsync writes. The manager's cache
// holds only Secrets carrying it.
const LabelManaged = "vaultsync.io/managed"

// Options configure the controllers; main binds them to flags.
type Options struct {
	// Dev enables development-only behaviour (the azureCLI auth method).
	Dev bool
	// WatchNamespaces restricts the controllers to these namespaces (empty: all).
	WatchNamespaces []string
	// MaxConcurrentReconciles is the number of VaultSecrets synced in parallel.
	MaxConcurrentReconciles int
}

// DefaultOptions returns the options used when no flag changes them.
func DefaultOptions() Options {
	return Options{MaxConcurrentReconciles: 16}
}

// BindFlags registers the options on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles,
		"Number of VaultSecrets synced in parallel.")
}

// AddToScheme registers the API types the controllers use.
func AddToScheme(s *runtime.Scheme) error {
	return nil
}

// RestrictCache limits the manager's Secret cache to managed Secrets.
func RestrictCache(o *cache.Options) {
	if o.ByObject == nil {
		o.ByObject = map[client.Object]cache.ByObject{}
	}
	o.ByObject[&corev1.Secret{}] = cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{LabelManaged: "true"}),
	}
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, o Options) error {
	return nil
}

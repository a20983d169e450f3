/*
Copyright 2026 The vaultsync Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package v1alpha1 contains the v1alpha1 API of the vaultsync.io group: the
// VaultSecret resource, which declares which Azure Key Vault objects are
// synchronised into which Kubernetes Secret, and the shared connections a
// VaultSecret can use instead of an inline vault: VaultConnection (one
// namespace) and ClusterVaultConnection (offered to chosen namespaces).
//
// The package holds types, validation markers and defaults only; it does no I/O.
// +kubebuilder:object:generate=true
// +groupName=vaultsync.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "vaultsync.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Go types of this package with a runtime.Scheme.
	// kubebuilder's scaffold; moving to runtime.NewSchemeBuilder changes the exported API of this package.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion} //nolint:staticcheck // SA1019: see above

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

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

// Package chart tests the two ways of installing vaultsync: the Helm chart in
// charts/vaultsync (helm lint, helm template for each values combination that
// matters, and helm install, upgrade and uninstall against the local control
// plane) and the kustomize manifests in config/default (kubectl apply -k). The
// tests run the real helm (bin/helm, from `make helm`) and kubectl binaries.
package chart

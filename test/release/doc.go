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

// Package release holds the checks of what a release publishes: that the
// VERSION file, the binary's --version, the chart's version and appVersion,
// the default image tag (Helm and kustomize) and the CRDs' version label
// agree, that the docs pin that version, and that the GitHub workflows pin
// every action by commit digest and grant each job only what it needs.
package release

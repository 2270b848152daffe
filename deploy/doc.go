// Package deploy holds what runs castle-destination on Kubernetes: the
// kustomize base (Deployment, settings ConfigMap generated from
// settings.env, Service, PodDisruptionBudget and a KEDA ScaledObject that
// scales on consumer lag up to the partition count), its components
// (Prometheus Operator objects, Kafka SASL/TLS, the event map, the sharded
// replay Job), the Helm chart (helm/), the Grafana dashboard (grafana/) and
// the Prometheus alert rules (prometheus/).
//
// It has no Go code; its tests check that the manifests agree with the
// binary (env names that config registers, probes on the endpoints ops
// serves, metric names the worker exports, the README's metric list) and
// with each other (the chart renders like the base; the generated copies of
// the rules and the dashboard are current; every alert has a runbook
// section and a firing unit test). The tests that render need helm,
// kustomize and promtool, and skip without them unless
// DEPLOY_TOOLS_REQUIRED is set, as .ci/manifests does. It does not build
// images (see the Dockerfile) or talk to a cluster.
package deploy

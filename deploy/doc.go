// Package deploy holds what runs castle-destination on Kubernetes: the
// kustomize base (Deployment, ConfigMap, Service, PodDisruptionBudget and a
// KEDA ScaledObject that scales on consumer lag up to the partition count),
// the Grafana dashboard (grafana/) and the Prometheus alert rules
// (prometheus/). It has no Go code; its tests check that the manifests
// agree with the binary: env names that config registers, probes on the
// endpoints ops serves, and metric names the worker exports. It does not
// build images (see the Dockerfile at the repository root) or talk to a
// cluster.
package deploy

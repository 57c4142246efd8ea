"""Thin Kubernetes helpers for the kind and context platforms and the Kubernetes scenarios.

    runner       one injectable way to run kind/kubectl/docker (tests record the commands)
    client       kubeconfig context check (file only) and API clients for one context
    kustomize    render an overlay with `kubectl kustomize`, stamp run labels, server-side apply
    kind_config  kind-config.yml: load, check (digest-pinned node image), render for a run (free
                 host ports, registry mirror)
    toolchain    the pinned node image, kind/Helm version requirements and their one-line checks
    rollout      wait for a Deployment with an error that names unready pods and why
    hpa_status   HPA status, Deployment replicas, pod CPU/memory from metrics.k8s.io
    logs         `kind export logs`, pod logs and events
    portforward  `kubectl port-forward` on 127.0.0.1
    conductor    the conductor's pods as Replicas; Secrets and backing-service stand-ins
    diff         structural diff of rendered objects (overlay checks)
    hpa_sampler  the HPA scenario's background sampler (its plan, verdict and plot: harness.analysis.hpa)
"""

"""The HPA scenario's pure analysis: the load plan that must drive the HPA to maxReplicas (:mod:`.plan`),
the sampled HPA status as the trajectory check reads it (:mod:`.series`), the verdict (:mod:`.verdict`)
and the plot of replicas and load together (:mod:`.plot`). The sampler that reads a live cluster is
:class:`harness.kube.hpa_sampler.HpaSampler`."""

"""The circuit-breaker scenario's pure analysis, shared by the kind path (Istio) and the docker
path (the harness's own Envoys): the fault schedule and the oracle's expectation for it
(:mod:`.schedule`), per-pod series built from what clients saw and what the client Envoy reported
(:mod:`.series`), the comparisons with the oracle (:mod:`.checks`), the seed's findings
(:mod:`.findings`) and the plot (:mod:`.plot`).

Which series the ejection analysis reads. The client is the gateway's Envoy; it retries a 503
(the VirtualService's ``retries: attempts: 3`` with Istio's default ``retryOn``, which includes
``retriable-status-codes`` = 503) on another pod. A client therefore sees the retried answer
*served by the healthy pod*, and a failing pod's share of client responses drops to ~0 without any
ejection. What ejection changes is where Envoy *sends attempts*: the per-host ``rq_total`` /
``rq_error`` counters of ``/clusters`` (``rq_error`` = 5xx answers, ``Filter::chargeUpstreamCode``).
So the series is the gateway's per-pod attempts; client attribution is kept for the users' view and
for what only clients see (403 RBAC, 503 UO, response times).
"""

"""The gateway values the harness passes, against the layout of the Istio gateway chart's own
``values.schema.json`` (manifests/charts/gateway/values.schema.json in istio/istio).

What was checked upstream (the ``search`` code corpus, istio/istio):
- the pre-fix file (commit 0044e906..., the 1.26.3-era layout) puts ``"additionalProperties": false``
  at the ROOT, beside ``"$ref": "#/$defs/values"``, with root ``properties`` listing only
  ``_internal_defaults_do_not_set``, ``global``, ``profile``, ``revision`` and ``pilot``;
- the fixed file (commit e7bf9af4..., the layout Istio ships since 1.26.4/1.27.1) puts
  ``"additionalProperties": false`` INSIDE ``$defs.values``, whose ``properties`` declare
  ``replicaCount`` (integer|null), ``autoscaling`` ({enabled: boolean, ...}) and ``service``
  ({type: string, ports: [{name: string, port: integer, protocol: string, targetPort: integer}]}),
  with no ``additionalProperties`` on the port items (so ``nodePort`` is allowed).
Helm <= 3.18.4 validated with a draft-07-style validator, where ``$ref`` makes sibling keywords
ignored, so the root-level ``additionalProperties`` never fired; Helm >= 3.18.5 evaluates ``$ref``
siblings as JSON Schema 2020-12 does, and every value was rejected (istio/istio#57354,
helm/helm#31160). The schemas below are the harness's own transcription of exactly the keys above
(not a copy of the files); the jsonschema library plays Helm's two validator generations.
"""
from __future__ import annotations

import copy

import jsonschema
from harness.kube.istio import ISTIO_VERSION, gateway_values
from harness.kube.toolchain import ISTIO_KUBERNETES_SUPPORT, NODE_KUBERNETES

PORT_ITEM = {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"},
                                              "protocol": {"type": "string"}, "targetPort": {"type": "integer"}}}
VALUES_PROPERTIES = {
    "_internal_defaults_do_not_set": {"type": "object"},
    "global": {"type": "object"},
    "replicaCount": {"type": ["integer", "null"]},
    "autoscaling": {"type": "object", "properties": {"enabled": {"type": "boolean"},
                                                     "maxReplicas": {"type": "integer"},
                                                     "minReplicas": {"type": "integer"}}},
    "service": {"type": "object", "properties": {"type": {"type": "string"},
                                                 "ports": {"type": "array", "items": PORT_ITEM}}},
}
ROOT_KEYS_1_26_3 = {"_internal_defaults_do_not_set": {"type": "object"}, "global": {"type": "object"},
                    "profile": {"type": "string"}, "revision": {"type": "string"}, "pilot": {"type": "object"}}

SCHEMA_1_26_3 = {"type": "object", "additionalProperties": False, "properties": ROOT_KEYS_1_26_3,
                 "$defs": {"values": {"type": "object", "properties": VALUES_PROPERTIES}},
                 "defaults": {"$ref": "#/$defs/values"}, "$ref": "#/$defs/values"}
SCHEMA_FIXED = {"$defs": {"values": {"type": "object", "additionalProperties": False,
                                     "properties": VALUES_PROPERTIES}},
                "defaults": {"$ref": "#/$defs/values"}, "$ref": "#/$defs/values"}


def errors(schema: dict, values: dict, validator=jsonschema.Draft202012Validator) -> list[str]:
    return sorted(e.message for e in validator(schema).iter_errors(values))


def test_the_harness_gateway_values_pass_the_pinned_charts_schema_layout():
    assert errors(SCHEMA_FIXED, gateway_values()) == []
    assert errors(SCHEMA_FIXED, gateway_values(31080, 31443)) == []


def test_the_1_26_3_layout_rejects_them_under_helm_3_18_5_semantics_only():
    # Helm >= 3.18.5 (2020-12: $ref siblings apply): the "additional properties ... not allowed"
    msgs = errors(SCHEMA_1_26_3, gateway_values())
    assert len(msgs) == 1 and "Additional properties are not allowed" in msgs[0]
    assert all(k in msgs[0] for k in ("replicaCount", "autoscaling", "service"))
    # Helm <= 3.18.4 (draft-07: $ref hides its siblings): the same values were accepted
    assert errors(SCHEMA_1_26_3, gateway_values(), jsonschema.Draft7Validator) == []


def test_the_check_fails_for_a_misspelled_or_mistyped_value():
    bad = copy.deepcopy(gateway_values())
    bad["replicaCounts"] = bad.pop("replicaCount")
    assert any("replicaCounts" in m for m in errors(SCHEMA_FIXED, bad))
    bad = copy.deepcopy(gateway_values())
    bad["service"]["ports"][1]["port"] = "80"
    assert any("'80' is not of type 'integer'" in m for m in errors(SCHEMA_FIXED, bad))


def test_the_pinned_istio_supports_the_pinned_node_kubernetes():
    minor = ".".join(ISTIO_VERSION.split(".")[:2])
    assert ISTIO_VERSION == "1.31.1" and minor in ISTIO_KUBERNETES_SUPPORT
    low, high = ISTIO_KUBERNETES_SUPPORT[minor]
    assert low <= NODE_KUBERNETES[:2] <= high


def test_the_readme_names_the_pinned_versions():
    from harness.config import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"Istio {ISTIO_VERSION}" in readme and "kindest/node:v1.34.0@sha256:" in readme


def test_the_images_side_loaded_are_the_ones_istiod_is_told_to_run():
    from harness.kube.istio import CHART_REPO, istio_images, istiod_values

    hub = istiod_values()["global"]["hub"]
    assert istio_images() == [f"{hub}/pilot:{ISTIO_VERSION}", f"{hub}/proxyv2:{ISTIO_VERSION}"]
    # 1.31's charts are not published to the retired GCS bucket (istio.io 1.31 upgrade notes)
    assert CHART_REPO == "https://blob.istio.io/istio-release/charts"

"""I2S resilience harness.

``chaos discover --no-install i2s-harness`` imports this package and calls ``discover``: the Chaos Toolkit
extension lives in ``harness.faults``.
"""


def discover(discover_system: bool = True):
    """Chaos Toolkit discovery of the harness's actions and probes (see harness.faults)."""
    from harness.faults import discover as discover_faults

    return discover_faults(discover_system=discover_system)

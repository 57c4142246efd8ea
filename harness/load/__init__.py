"""Load: data-driven Locust shapes, a runner that starts Locust in its own process, SLO and validity."""

"""What the run measured as users see it: recovery time (``rto``) and recovery point (``rpo``).

Import the modules directly (``from harness.measure.rpo import CanaryLedger, verify``); this package
imports nothing itself, so each module stays usable on its own.
"""

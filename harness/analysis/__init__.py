"""Pure analysis of what a run measured (no I/O): per-scenario interpretation of samples
against the oracles in harness.oracles."""

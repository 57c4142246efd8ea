"""The harness's pytest plugin, for the scenarios and the harness's own tests alike."""
pytest_plugins = ["harness.pytest_plugin"]

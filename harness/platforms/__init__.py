"""Where the conductor runs: the docker platform here, kind and an existing cluster elsewhere."""
from harness.platforms.base import Platform, Replica

__all__ = ["Platform", "Replica", "make_platform"]


def make_platform(settings, stack):
    """The platform the settings name, not yet up (``auto`` is resolved here if nothing resolved it yet)."""
    if settings.platform == "auto":
        from harness.doctor import choose_platform

        settings.platform, settings.platform_choice = choose_platform(settings)
    if settings.platform == "docker":
        from harness.platforms.docker import DockerPlatform

        return DockerPlatform(settings, stack)
    if settings.platform == "kind":
        from harness.platforms.kind import KindPlatform

        return KindPlatform(settings, stack)
    from harness.platforms.context import ContextPlatform

    return ContextPlatform(settings, stack)

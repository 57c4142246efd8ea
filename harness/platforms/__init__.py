"""Where the conductor runs: the docker platform here, kind and an existing cluster elsewhere.

The one place docker and kind differ: scenarios and faults use the platform's capability adapters
(harness.platforms.capabilities); a chaos process rebuilds the platform with :func:`attach`."""
from harness.platforms.attach import attach
from harness.platforms.base import Platform, Replica

__all__ = ["Platform", "Replica", "make_platform", "platform_class", "attach"]


def platform_class(settings) -> type[Platform]:
    """The platform class the settings name (``auto`` is resolved here if nothing resolved it yet)."""
    if settings.platform == "auto":
        from harness.doctor import choose_platform

        settings.platform, settings.platform_choice = choose_platform(settings)
    if settings.platform == "docker":
        from harness.platforms.docker import DockerPlatform

        return DockerPlatform
    if settings.platform == "kind":
        from harness.platforms.kind import KindPlatform

        return KindPlatform
    from harness.platforms.context import ContextPlatform

    return ContextPlatform


def make_platform(settings, stack):
    """The platform the settings name, not yet up (``auto`` is resolved here if nothing resolved it yet)."""
    return platform_class(settings)(settings, stack)

"""Entry point: python -m conductor"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from .app import Conductor, build_apps
from .config import Settings, mask_url
from .logsetup import setup_logging

log = logging.getLogger("conductor")


async def serve(settings: Settings, redact) -> None:
    loop = asyncio.get_running_loop()
    # Name resolution runs in the default executor: keep it roomy so a slow resolver
    # during an outage cannot starve the other dependencies' reconnects.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="resolver"))

    conductor = Conductor(settings, redact)
    app, metrics_app = build_apps(conductor)

    access_log = logging.getLogger("aiohttp.access") if settings.log_level == "DEBUG" else None
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=settings.shutdown_timeout_s,
                           handle_signals=False)
    await runner.setup()
    # Listen first: /health/live answers while the dependencies are still coming up.
    await web.TCPSite(runner, "0.0.0.0", settings.http_port, backlog=1024, reuse_address=True).start()
    metrics_runner = None
    if settings.metrics_port and settings.metrics_port != settings.http_port:
        metrics_runner = web.AppRunner(metrics_app, access_log=None, shutdown_timeout=2, handle_signals=False)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, "0.0.0.0", settings.metrics_port, reuse_address=True).start()

    await conductor.start()
    log.info(
        "conductor listening",
        extra={"fields": {
            "http_port": settings.http_port, "metrics_port": settings.metrics_port,
            "environment": settings.environment, "version": settings.version,
            "cpu_cost_ms": settings.cpu_cost_ms, "admin_endpoint": bool(settings.admin_token),
            "database": mask_url(settings.database_url), "redis": mask_url(settings.redis_url),
            "rabbitmq": mask_url(settings.rabbitmq_url), "queue": settings.queue_name,
        }},
    )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    t0 = time.monotonic()
    log.info("shutdown requested: failing readiness, draining for %.1fs", settings.shutdown_drain_s)
    conductor.begin_shutdown()
    if settings.shutdown_drain_s > 0:
        await asyncio.sleep(settings.shutdown_drain_s)
    # Stops listening, then waits (up to SHUTDOWN_TIMEOUT_S) for in-flight requests.
    await runner.cleanup()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await conductor.stop()
    log.info("shutdown complete in %.2fs", time.monotonic() - t0)


def main() -> None:
    settings = Settings.from_env()
    redact = setup_logging(settings)
    loop_factory = None
    if settings.use_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            log.info("uvloop not installed; using the default asyncio loop")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(settings, redact))

if __name__ == "__main__":
    main()

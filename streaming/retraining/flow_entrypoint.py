"""The retraining flow, reached by name: ``retraining.flow`` (default ``flows.retrain:retrain``).

``streaming`` never imports ``flows`` (the flow builds on ``streaming``, not the reverse):
the trigger, `driftloop worker` and `driftloop retrain` load the flow from its entrypoint, the
way a Prefect deployment names its flow (``module:attribute``). A team can name its own flow
there; it is called with ``drift_event_id`` and ``model_name`` and reads its driftloop
settings with :func:`run_settings` (the in-process caller's, else the environment's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streaming.config import Settings, import_attribute, load_settings
from streaming.errors import ConfigError

# Settings for runs started in-process, by thread. (Not a ContextVar: a served flow is
# cloudpickled, and ContextVars do not pickle; in a worker this stays empty and the runs
# read their settings from the environment.)
_settings_by_thread: dict[int, Settings] = {}


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Runs started inside (in this thread) use these settings instead of the environment's."""
    thread = threading.get_ident()
    previous = _settings_by_thread.get(thread)
    _settings_by_thread[thread] = settings
    try:
        yield
    finally:
        if previous is None:
            _settings_by_thread.pop(thread, None)
        else:
            _settings_by_thread[thread] = previous


def run_settings() -> Settings:
    """The settings of the run in this thread: its in-process caller's, else the environment's."""
    return _settings_by_thread.get(threading.get_ident()) or load_settings()


def load_flow(entrypoint: str) -> Any:
    """The Prefect flow named ``module:attribute``; a clear error when it is not one."""
    module_name, _, attribute = entrypoint.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"retraining.flow {entrypoint!r}: expected module:attribute, e.g. flows.retrain:retrain"
        )
    target = import_attribute(entrypoint, "retraining.flow")
    if not hasattr(target, "serve"):
        raise ConfigError(f"retraining.flow {entrypoint!r} is not a Prefect flow")
    return target


def run_in_process(
    settings: Settings, drift_event_id: str = "manual", tags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run the configured flow once in this thread with ``settings``; returns its result."""
    from prefect import tags as prefect_tags

    flow = load_flow(settings.retraining.flow)
    with using_settings(settings), prefect_tags(*tags):
        result: dict[str, Any] = flow(drift_event_id=drift_event_id, model_name=settings.model_name)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m streaming.retraining.flow_entrypoint --drift-event-id ID [--tag T]...``: one
    run of the configured flow with the environment's settings (what :class:`ProcessLauncher`
    starts; ``driftloop retrain`` is the command for people). Logs JSON lines on stderr; exits
    1 when the run fails."""
    import argparse

    from streaming.logs import configure_logging, get_logger

    parser = argparse.ArgumentParser(prog="python -m streaming.retraining.flow_entrypoint")
    parser.add_argument("--drift-event-id", default="manual")
    parser.add_argument("--tag", action="append", default=[])
    args = parser.parse_args(argv)
    configure_logging("INFO")
    try:
        run_in_process(load_settings(), args.drift_event_id, tuple(args.tag))
    except Exception as exc:  # the flow published "failed" already (if Kafka let it)
        get_logger("driftloop.retrain").error(
            "retraining run failed: %s", exc, extra={"drift_event_id": args.drift_event_id}
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

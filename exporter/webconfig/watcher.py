"""Following the web config file: the current config, read again when the file changes, the
last good one kept when the new one is broken."""

from __future__ import annotations

import logging
import time

from exporter.file_identity import file_identity
from exporter.webconfig.model import WebConfig, WebConfigError
from exporter.webconfig.parsing import load_web_config
from exporter.webconfig.tls import RELOAD_CHECK_INTERVAL_SECONDS

logger = logging.getLogger("exporter.webconfig")  # one name for the whole web config


class WebConfigWatcher:
    """Holds the current web config; re-reads the file when it changes, keeping the last good one.

    A broken file at start-up raises WebConfigError; later it is logged and the old config stays.
    """

    def __init__(
        self, path: str | None, *, check_interval_seconds: float = RELOAD_CHECK_INTERVAL_SECONDS
    ) -> None:
        self._path = path
        self._check_interval = check_interval_seconds
        self._signature = file_identity(path) if path is not None else None
        self._config = load_web_config(path) if path is not None else WebConfig()
        self._next_check = time.monotonic() + check_interval_seconds

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def config(self) -> WebConfig:
        if self._path is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self._check_interval
                self._reload_if_changed(self._path)
        return self._config

    def _reload_if_changed(self, path: str) -> None:
        signature = file_identity(path)
        if signature == self._signature:
            return
        self._signature = signature  # a broken file is reported once, not every second
        try:
            config = load_web_config(path)
        except WebConfigError as exc:
            logger.error("%s; keeping the previous web config", exc)
            return
        self._config = config
        logger.info(
            "reloaded web config %s (%d basic auth users)", path, len(config.basic_auth_users)
        )

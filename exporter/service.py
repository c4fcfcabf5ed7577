"""The running exporter: configuration, state, schedule and metrics wired together, and reloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from exporter.config import Config, ConfigError, config_from_environment, load_config
from exporter.inventory import KeyInventory
from exporter.links import DEFAULT_LINKS, Links
from exporter.metrics import ExporterMetrics, MetricsRenderer
from exporter.probes.inference import InferenceProber, log_cost
from exporter.probes.live import COST_PER_PROBE_USD, LiveProber, estimated_monthly_cost
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.redaction import SECRETS
from exporter.runner import ProbeRunner
from exporter.scheduler import ProbeScheduler
from exporter.state import StateStore
from exporter.state_file import StateFile

log = logging.getLogger("exporter.service")

KeyFilter = Callable[[Config], Config]


def read_config(path: str | None) -> Config:
    return load_config(path) if path else config_from_environment()


class Exporter:
    def __init__(
        self,
        config_path: str | None,
        key_filter: KeyFilter | None = None,
        storage_path: str | None = None,
        links: Links = DEFAULT_LINKS,
    ) -> None:
        self.config_path = config_path
        self.links = links  # where the runbook links it prints point
        self.key_filter = key_filter or (lambda config: config)
        self.store = StateStore()
        self.metrics = ExporterMetrics()
        self.renderer = MetricsRenderer(self.metrics, self.store.latency)
        self.store.subscribe(self.renderer.update)
        self.runner = ProbeRunner(
            self.store,
            {
                "rest": RestProber(),
                "realtime": RealtimeProber(),
                "live": LiveProber(),
                "inference": InferenceProber(),
            },
            links,
        )
        self.scheduler = ProbeScheduler(self.runner)
        # The optional admin key's inventory: its own schedule, its own exposition block.
        self.inventory = KeyInventory()
        self.runner.rejection_check = self.inventory.explain_rejection
        self.renderer.extra_exposition = self.inventory.exposition
        self.config: Config | None = None
        self.state_file = StateFile(storage_path, self.store) if storage_path else None
        self._saving: asyncio.Task[None] | None = None

    def read_shard_config(self) -> Config:
        """The configuration file read and validated now, filtered to this shard's keys; applies
        nothing. Raises ConfigError naming the file, the field and the fix."""
        return self.key_filter(read_config(self.config_path))

    def switch_to(self, config: Config) -> None:
        """Serve `config` from now on: the store, the renderer and the schedule follow it. Keys
        that stay unchanged keep their state and schedule; removed keys' secrets are forgotten."""
        old_names = {key.name for key in self.config.keys} if self.config else set()
        self.config = config
        names = {key.name for key in config.keys}
        for removed in old_names - names:
            SECRETS.forget(removed)
        self.store.configure({key.name: key.probes for key in config.keys})
        self.renderer.retain(names)
        self.scheduler.apply(config)
        self.inventory.apply(config)
        self.metrics.config_loaded(True, len(config.keys))
        for warning in config.warnings:  # at each (re)load: settings that look like a mistake
            log.warning("configuration warning", extra={"fields": {"warning": warning}})
        # The billed probes say what they cost, at each (re)load.
        log_cost(config.keys)
        _log_billed_probes(config)

    def read_and_switch(self) -> Config:
        """read_shard_config then switch_to; on ConfigError nothing changes."""
        config = self.read_shard_config()
        self.switch_to(config)
        return config

    def reload_or_keep_last_good(self) -> tuple[bool, str]:
        """SIGHUP and /-/reload: switch to the file as it is now, or keep serving the last good
        configuration when it is broken (logged, and openai_key_exporter_config_last_reload_successful
        says 0). Returns (reloaded, a sentence for the person who asked)."""
        try:
            config = self.read_and_switch()
        except ConfigError as error:
            self.metrics.config_loaded(False)
            log.error(
                "configuration reload failed; keeping the previous one",
                extra={"fields": {"error": str(error)}},
            )
            return False, str(error)
        log.info("configuration reloaded", extra={"fields": {"keys": len(config.keys)}})
        return True, f"reloaded {len(config.keys)} keys"

    def restore(self) -> None:
        """Results kept by the previous process, for the keys applied; before start()."""
        if self.state_file is not None:
            self.state_file.restore()

    def start(self) -> None:
        self.scheduler.start()
        self.inventory.start()
        if self.state_file is not None:
            self._saving = asyncio.get_running_loop().create_task(self.state_file.run())

    async def stop(self) -> None:
        # Probes cancelled here still end their sessions: aclose waits for that, bounded.
        self.scheduler.shutdown()
        await self.inventory.stop()
        if self._saving is not None:
            self._saving.cancel()
        if self.state_file is not None:
            self.state_file.write()  # the latest results, for the next start
        await self.runner.aclose()


def _log_billed_probes(config: Config) -> None:
    """The opt-in GPT-Live probe starts billed sessions: say what it costs, at every load."""
    keys, monthly = estimated_monthly_cost(config.keys)
    if keys:
        log.warning(
            "the live probe starts billed GPT-Live sessions",
            extra={
                "fields": {
                    "keys": keys,
                    "estimated_usd_per_month": round(monthly, 2),
                    "per_probe_usd": COST_PER_PROBE_USD,
                }
            },
        )

"""Command line: the exporter itself, and its `check`, `simulate` and `demo` commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import platform
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace

from exporter import __version__
from exporter.config import Config, ConfigError
from exporter.links import Links, default_external_url, parse_external_url
from exporter.logs import FORMATS, LEVELS, setup_logging
from exporter.server import DEFAULT_MAX_REQUESTS
from exporter.service import Exporter, KeyFilter, read_config
from exporter.serving import serve_until_stopped
from exporter.sharding import resolve_shard, shard_for
from exporter.webconfig import (
    WebConfigError,
    WebConfigWatcher,
    load_web_config,
)

log = logging.getLogger("exporter.cli")
DEFAULT_LISTEN = ":10077"


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """`:10077`, `127.0.0.1:10077`, `[::1]:10077` -> (host or None for every interface, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a listen address (write host:port, :port or [ipv6]:port)"
        )
    host = host.strip("[]")
    return (host or None), int(port)


def _external_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.external-url",
        dest="external_url",
        metavar="URL",
        type=parse_external_url,
        default=argparse.SUPPRESS,
        help="the address people reach the exporter at; runbook links are <URL>/runbook#... "
        "(default: http://<this host or the listen address>:<port>)",
    )


def _common(parser: argparse.ArgumentParser, config: bool = True) -> None:
    # No defaults here: a command's parser would overwrite what was given before the command
    # (`--config.file x.yml check`); main() fills them in.
    if config:
        parser.add_argument(
            "--config.file",
            dest="config_file",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help="YAML configuration (default: one key from OPENAI_API_KEY)",
        )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="default info (error for check)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="default logfmt",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-key-exporter",
        description="Prometheus exporter that probes OpenAI API keys over REST and Realtime.",
    )
    _common(parser)
    parser.add_argument(
        "--version",
        action="version",
        version=f"openai-key-exporter {__version__} (python {platform.python_version()})",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration and exit 0 (valid) or 1",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        type=parse_listen_address,
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics")
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS and basic auth, in the Prometheus exporter-toolkit format",
    )
    _external_url(parser)
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="allow POST /-/reload",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help=f"concurrent scrapes served; more get 503 (default {DEFAULT_MAX_REQUESTS}, 0: no limit)",
    )
    parser.add_argument(
        "--storage.path",
        dest="storage_path",
        metavar="DIR",
        help="keep each key's last result and failure count here across restarts (default: none)",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        metavar="N",
        help="this replica's shard (default: the pod's StatefulSet ordinal)",
    )
    parser.add_argument(
        "--shard.total",
        dest="shard_total",
        type=int,
        default=1,
        metavar="N",
        help="replicas sharing the keys; each probes the keys whose name hashes to it",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help="probe every key once, now, and print the checklist")
    _common(check)
    check.add_argument("--output", choices=("text", "json"), default="text")
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    _external_url(check)
    simulate = commands.add_parser("simulate", help="serve the bundled OpenAI simulator")
    simulate.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default="127.0.0.1:8089",
        type=parse_listen_address,
    )
    simulate.add_argument("--tls.cert-file", dest="tls_cert_file")
    simulate.add_argument("--tls.key-file", dest="tls_key_file")
    demo = commands.add_parser(
        "demo", help="the exporter against the bundled simulator, no key needed"
    )
    demo.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        type=parse_listen_address,
    )
    _common(demo, config=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config_file = getattr(args, "config_file", None)
    # For check, the checklist is the output: logs would only repeat it.
    args.log_level = getattr(args, "log_level", "error" if args.command == "check" else "info")
    args.log_format = getattr(args, "log_format", "logfmt")
    setup_logging(args.log_level, args.log_format)
    if args.command == "check":
        from exporter.check import run_check

        host, port = parse_listen_address(DEFAULT_LISTEN)
        links = Links(getattr(args, "external_url", None) or default_external_url(host, port))
        return run_check(args.config_file, args.output, args.color, links=links)
    if args.command == "simulate":
        return run_simulator(args.listen_address, args.tls_cert_file, args.tls_key_file)
    if args.command == "demo":
        from exporter.demo import run_demo

        return run_demo(args.listen_address)
    if args.config_check:
        return config_check(args.config_file, args.web_config_file)
    return serve(args)


def run_simulator(address: tuple[str | None, int], cert: str | None, key: str | None) -> int:
    from exporter.simulator import serve_forever

    if bool(cert) != bool(key):
        print(
            "--tls.cert-file and --tls.key-file go together (give both or neither)", file=sys.stderr
        )
        return 2
    context = None
    if cert and key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    host, port = address
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host or "0.0.0.0", port, context))
    return 0


def config_check(path: str | None, web_config_path: str | None = None) -> int:
    try:
        config = read_config(path)
        if web_config_path:
            load_web_config(web_config_path)
    except (ConfigError, WebConfigError) as error:
        print(f"configuration is invalid: {error}", file=sys.stderr)
        return 1
    for warning in config.warnings:  # valid, but probably a mistake: said, not refused
        print(f"configuration warning: {warning}", file=sys.stderr)
    print(f"configuration is valid: {config.source}: {len(config.keys)} keys")
    return 0


def shard_filter(index: int, total: int) -> KeyFilter:
    def only_this_shard(config: Config) -> Config:
        keys = tuple(key for key in config.keys if shard_for(key.name, total) == index)
        return replace(config, keys=keys)

    return only_this_shard


def serve(args: argparse.Namespace) -> int:
    try:
        index, total = resolve_shard(args.shard_index, args.shard_total, socket.gethostname())
        watcher = WebConfigWatcher(args.web_config_file)
    except (ValueError, WebConfigError) as error:
        log.error("cannot start", extra={"fields": {"error": str(error)}})
        return 1
    host, port = args.listen_address
    tls = watcher.config.tls_server_config is not None
    links = Links(getattr(args, "external_url", None) or default_external_url(host, port, tls))
    exporter = Exporter(
        args.config_file,
        shard_filter(index, total) if total > 1 else None,
        storage_path=args.storage_path,
        links=links,
    )
    exporter.metrics.set_shard(index, total)
    try:
        config = exporter.read_shard_config()  # validated now; applied once the listener answers
    except ConfigError as error:
        exporter.metrics.config_loaded(False)
        log.error("configuration is invalid", extra={"fields": {"error": str(error)}})
        return 1
    log.info(
        "starting",
        extra={
            "fields": {"version": __version__, "keys": len(config.keys), "config": config.source}
        },
    )
    try:
        asyncio.run(
            serve_until_stopped(
                exporter,
                args.listen_address,
                args.telemetry_path,
                args.enable_lifecycle,
                watcher,
                args.max_requests,
                config,
            )
        )
    except OSError as error:
        log.error("cannot serve", extra={"fields": {"error": str(error)}})
        return 1
    return 0

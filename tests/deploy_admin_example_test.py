"""The deployment examples' optional admin block, commented out in each: uncommented, the
configuration it makes is accepted, with the admin key read from where the example mounts it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter.config import parse_config
from tests.harness import REPO

MARKER = "# admin:"


def _uncommented(text: str) -> str:
    """`text` with the commented-out admin block (from `# admin:` on) made live."""
    head, _, block = text.partition(MARKER)
    assert block, "the example lost its commented admin block"
    lines = ["admin:" + block.splitlines()[0]]
    for line in block.splitlines()[1:]:
        if not line.strip().startswith("#"):
            break
        lines.append(re.sub(r"^(\s*)# ", r"\1", line))
    return head + "\n".join(lines) + "\n"


def _accepted(text: str, file: str, mounted: str, tmp_path: Path) -> str:
    """The admin key file's name once the block is on, the mounted directory mapped to a real
    one holding every key file the configuration names."""
    for name in re.findall(rf"{re.escape(mounted)}/(\S+)", text):
        (tmp_path / name).write_text("sk-REPLACE-ME\n")
    config = parse_config(text.replace(mounted, str(tmp_path)), file)
    assert config.admin is not None and config.keys
    source = config.admin.source
    assert source.kind.value == "api_key_file", source
    return Path(source.location).name


def test_the_kubernetes_admin_block_reads_the_secret_s_admin_entry(tmp_path: Path) -> None:
    configmap = yaml.safe_load((REPO / "deploy/kubernetes/base/configmap.yaml").read_text())
    text = configmap["data"]["config.yml"]
    assert "admin:" not in text.replace(MARKER, "")  # off unless someone turns it on
    mounted = "/etc/openai-key-exporter/keys"
    name = _accepted(_uncommented(text), "configmap.yaml", mounted, tmp_path)
    secret = yaml.safe_load((REPO / "deploy/kubernetes/base/secret.example.yaml").read_text())
    assert name in secret["stringData"]  # the Secret entry it names


def test_the_compose_admin_block_reads_its_own_secret(tmp_path: Path) -> None:
    text = (REPO / "deploy/compose/exporter.yml").read_text()
    assert "admin:" not in text.replace(MARKER, "")
    name = _accepted(_uncommented(text), "exporter.yml", "/run/secrets", tmp_path)
    assert name == "openai_admin_key"

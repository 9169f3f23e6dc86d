"""Model cards: ``weights/cards/ID.md``, what the manifest does not hold about a weights file.

The manifest (``weights/manifest.json``) keeps only what the runtime reads (``RUNTIME_FIELDS``). Everything an
export knows beside that (training data, configs, stages, notes, results) goes into the card's closing JSON block,
its record; the prose above the record is written by people and kept when an export rewrites the record.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RUNTIME_FIELDS = ("id", "kind", "file", "architecture", "channels", "stride", "family", "settings", "default_setting",
                  "model", "conditions", "serves", "sha256", "postfilter_graph")
_RECORD = re.compile(r"^```json\n(.*?)^```\n?", re.S | re.M)


def split_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An export's whole entry -> (what the manifest keeps, what the card's record keeps)."""
    return ({key: value for key, value in entry.items() if key in RUNTIME_FIELDS},
            {key: value for key, value in entry.items() if key not in RUNTIME_FIELDS})


def card_path(weights_dir: Path, weights_id: str) -> Path:
    return Path(weights_dir) / "cards" / f"{weights_id}.md"


def card_record(weights_dir: Path, weights_id: str) -> dict[str, Any]:
    """The record of ``weights_id``'s card (the last JSON block), or {} where there is no card."""
    try:
        text = card_path(weights_dir, weights_id).read_text()
    except FileNotFoundError:
        return {}
    blocks = _RECORD.findall(text)
    return json.loads(blocks[-1]) if blocks else {}


def write_card_record(weights_dir: Path, weights_id: str, record: dict[str, Any]) -> Path:
    """Put ``record`` in ``weights_id``'s card: replace its record, or start a card that holds only the record."""
    path = card_path(weights_dir, weights_id)
    block = "```json\n" + json.dumps(record, indent=2) + "\n```\n"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = f"# {weights_id}\n\nWritten by the export; describe the weights above the record.\n\n## Record\n\n"
    matches = list(_RECORD.finditer(text))
    if matches:
        last = matches[-1]
        text = text[:last.start()] + block + text[last.end():]
    else:
        text += block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def installed_entry(weights_id: str, kind: str = "codec") -> dict[str, Any]:
    """An installed weights' manifest entry with its card's record: everything known about it."""
    from facecodec.zoo import manifest_entry, weights_folder

    return {**card_record(weights_folder(), weights_id), **manifest_entry(weights_id, kind)}

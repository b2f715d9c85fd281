"""The delivery example's governance run (`examples/delivery/governance.py`): the real trainer and registry on an
in-memory bus. v1 is promoted; v2, better overall but trained on buggy store labels, is refused on the store slice
(the channel is declared sensitive), and both cards carry the explainability and slice reports with valid PNGs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # two trainings and four cards: seconds alone, minutes on a shared 2-core machine
def test_the_delivery_governance_run_refuses_the_challenger_on_the_store_slice(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("governance", ROOT / "examples" / "delivery" / "governance.py")
    assert spec is not None and spec.loader is not None
    governance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(governance)
    result = governance.run(tmp_path, max_iter=60)
    v1, v2 = result["decisions"]["1"], result["decisions"]["2"]
    assert v1["status"] == "champion"
    assert v2["status"] == "rejected" and v2["gate_mae"] < v2["champion_mae"]  # better overall ...
    assert v2["reason"].startswith("refused on a slice: slice customer_orders.channel=store: mae ")  # ... not here
    assert result["audit"][-1]["action"] == "reject" and result["audit"][-1]["why"] == v2["reason"]
    for version in ("1", "2"):
        folder = tmp_path / f"delivery_time-v{version}"
        card = (folder / "card.md").read_text()
        assert "## Explainability (holdout)" in card and "`customer_orders.channel` (sensitive) | store" in card
        for name in ("importance.png", "partial_dependence.png", "slices.png"):
            assert f"]({name})" in card
            with Image.open(folder / name) as image:
                assert image.format == "PNG" and image.size[0] > 200
        assert (folder / "card.html").read_text().count("data:image/png;base64,") == 3

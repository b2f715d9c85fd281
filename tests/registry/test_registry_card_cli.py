"""`mlops models card NAME --html / --figures DIR`: the registry's Markdown card and figures as one self-contained
HTML page (figures inlined as base64) or as files, against a stand-in registry client (no server)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops_tools.cli import main, models_cmd

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                       "AAAABJRU5ErkJggg==")
MARKDOWN = "# Model card: m v1\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![Slices](slices.png)\n"


class Client:
    def __init__(self) -> None:
        self.asked: list[bool] = []

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def model_card(self, name: str, version: str = "", figures: bool = False) -> api.ModelCard:
        self.asked.append(figures)
        drawn = [api.Figure(name="slices.png", title="mae per slice", png=PNG)] if figures else []
        return api.ModelCard(name=name, version="1", markdown=MARKDOWN, figures=drawn)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    fake = Client()
    monkeypatch.setattr(models_cmd, "_client", lambda args: fake)
    return fake


def test_card_html_is_one_page_with_the_figures_inlined(client: Client, tmp_path: Path) -> None:
    out = tmp_path / "card.html"
    assert main(["models", "card", "m", "--html", "--output", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<h1>Model card: m v1</h1>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page and 'src="slices.png"' not in page
    assert client.asked == [True]


def test_card_figures_writes_the_markdown_and_its_pngs(client: Client, tmp_path: Path, capsys) -> None:
    assert main(["models", "card", "m", "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "card.md").read_text() == MARKDOWN and (tmp_path / "slices.png").read_bytes() == PNG
    assert main(["models", "card", "m"]) == 0  # plain Markdown, no figures drawn
    assert capsys.readouterr().out == MARKDOWN and client.asked == [True, False]

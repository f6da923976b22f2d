"""Real artwork as training data: data.sources mixing synthetic logos and pinned icon sets.

prepare renders the vendored sets (artwork/) and fetched pinned packages with the real
resvg, labels carry each logo's origin, validate reports the origins apart, and the config
refuses the sets the model is judged on or that overlap brands.
"""

from __future__ import annotations

import dataclasses
import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from svg_quality import artwork
from svg_quality.artsets import TRAINING, VENDORED, training_icon
from svg_quality.config import DataConfig, SplitConfig, parse_params
from svg_quality.labeling import label_dataset
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.prepare import collect, write
from svg_quality.report import _origin_lines
from svg_quality.validation import per_origin_metrics
from tests.conftest import REPO_ROOT

ARTWORK = REPO_ROOT / "artwork"


def mixed(**over) -> DataConfig:
    base = dict(
        sources=("synthetic", "artwork"),
        per_type=6,
        artwork=("fluent-color", "icon-park-twotone"),
        per_set=20,
        image_size=64,
        sizes=(128,),
        size_share=0.5,
    )
    return DataConfig(**{**base, **over})


@pytest.fixture(scope="module")
def prepared():
    return collect(mixed(), SplitConfig(), workers=1, artwork_dir=ARTWORK)


def test_prepare_mixes_synthetic_and_artwork_and_keeps_the_synthetic_splits(prepared) -> None:
    logos = prepared.logos
    by_origin = logos["origin"].value_counts().to_dict()
    assert by_origin["synthetic"] == 24
    assert 30 <= by_origin["artwork"] <= 40  # 2 sets x 20, less any duplicate pictures
    art = logos[logos["origin"] == "artwork"]
    assert art["source"].str.match(r"^artwork:(fluent-color|icon-park-twotone):").all()
    # fluent-color is all gradients: its own stratum reaches val and test
    fluent = art[art["source"].str.startswith("artwork:fluent-color:")]
    assert set(fluent["logo_type"]) == {"gradient"}
    assert {"train", "val", "test"} <= set(fluent["split"])
    # the synthetic logos are split exactly as without the artwork
    alone = collect(mixed(sources=("synthetic",)), SplitConfig(), workers=1)
    syn = logos[logos["origin"] == "synthetic"].set_index("image_id")["split"].sort_index()
    assert syn.equals(alone.logos.set_index("image_id")["split"].sort_index())


def test_artwork_is_rendered_from_the_svg_at_every_size(prepared, tmp_path) -> None:
    write(prepared, tmp_path / "logos", tmp_path / "logos.csv", tmp_path / "reports")
    logos = pd.read_csv(tmp_path / "logos.csv", dtype={"image_id": str, "sizes": str})
    sized = logos[(logos["origin"] == "artwork") & (logos["sizes"] == "128")]
    assert len(sized) >= 4
    for image_id in sized["image_id"]:
        with Image.open(tmp_path / "logos" / f"{image_id}.png") as small:
            view = np.asarray(small.convert("RGB"), dtype=np.float32)
        with Image.open(tmp_path / "logos" / "128" / f"{image_id}.png") as big:
            assert max(big.size) == 128
            half = np.asarray(
                big.convert("RGB").resize(small.size, Image.Resampling.BOX), dtype=np.float32
            )
        assert np.abs(view - half).mean() < 6.0  # the same picture, drawn at twice the size
    summary = (tmp_path / "reports" / "summary.json").read_text()
    assert '"by_origin"' in summary and '"artwork/test"' in summary


def test_labels_carry_the_origin(prepared, tmp_path, repo_params) -> None:
    write(prepared, tmp_path / "logos", tmp_path / "logos.csv", tmp_path / "reports")
    logos = pd.read_csv(tmp_path / "logos.csv", dtype={"image_id": str, "sizes": str})
    logos = logos.fillna({"sizes": ""})
    params = parse_params(repo_params)
    two = pd.concat([logos[logos["origin"] == o].head(1) for o in ("synthetic", "artwork")])
    df, _ = label_dataset(
        two,
        tmp_path / "logos",
        tmp_path / "work",
        params.vtracer,
        dataclasses.replace(params.label, samples_per_image=2, samples_per_size=1, workers=1),
        image_size=64,
        progress=False,
    )
    assert (df["status"] == "ok").all()
    assert dict(zip(df["image_id"], df["origin"], strict=True)) == dict(
        zip(two["image_id"], two["origin"], strict=True)
    )


def test_a_fetched_pinned_set_goes_through_prepare_and_a_changed_byte_is_refused(
    tmp_path, monkeypatch
) -> None:
    """duo-icons (17 kB, pinned, not vendored): fetch -> type -> render -> prepare."""
    pkg = TRAINING["duo-icons"]
    cache = tmp_path / "cache"
    cached = artwork.cache_dir() / pkg.tarball
    if cached.is_file():
        (cache / "npm").mkdir(parents=True)
        shutil.copy2(cached, cache / "npm" / pkg.tarball)
    monkeypatch.setenv(artwork.CACHE_ENV, str(cache))
    cfg = mixed(sources=("artwork",), artwork=("duo-icons",), per_set=6, sizes=())
    try:
        prep = collect(cfg, SplitConfig(), workers=1, artwork_dir=ARTWORK)
    except artwork.ArtworkError as exc:
        if "cannot download" in str(exc):
            pytest.skip(f"the npm registry is unreachable and no tarball is cached: {exc}")
        raise
    assert len(prep.logos) == 6
    assert set(prep.logos["logo_type"]) == {"simple"}  # monochrome, drawn in varied fills
    assert (cache / "npm" / pkg.tarball).is_file()  # cached outside any DVC out
    pictures = [np.asarray(Image.open(io.BytesIO(p))) for p in prep.pngs.values()]
    inks = {tuple(np.round(p[p.sum(axis=2) < 600].mean(axis=0), -1)) for p in pictures}
    assert len(inks) >= 2, "monochrome icons should get varied fills"

    tarball = cache / "npm" / pkg.tarball
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    with pytest.raises(artwork.ArtworkError, match="does not match the pin"):
        collect(cfg, SplitConfig(), workers=1, artwork_dir=ARTWORK)
    assert tarball.read_bytes() == bytes(data)  # refused, not deleted or replaced


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["twemoji"], "real-icon folder"),
        (["noto-v1"], "real-icon folder"),
        (["simple-icons"], "brand or logo set"),
        (["fa6-brands"], "brand or logo set"),
        (["circle-flags"], "real-icon folder"),
        (["flagpack"], "flag set"),
        (["fluent-emoji-flat"], "Fluent Emoji"),
        (["mdi"], "not a pinned training set"),
        (["emojione", "emojione"], "names a set twice"),
    ],
)
def test_config_refuses_sets_that_may_never_be_trained_on(repo_params, sets, message) -> None:
    raw = {**repo_params, "data": {**repo_params["data"], "artwork": sets}}
    with pytest.raises(ValueError, match=rf"data\.artwork.*{message}"):
        parse_params(raw)


def test_config_needs_a_set_for_artwork_and_known_sources() -> None:
    with pytest.raises(ValueError, match="data.artwork"):
        DataConfig(sources=("artwork",), artwork=())
    with pytest.raises(ValueError, match="data.sources"):
        DataConfig(sources=())
    with pytest.raises(ValueError, match="data.sources"):
        DataConfig(sources=("synthetic", "synthetic"))


def test_missing_vendored_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"fluent-color\.json is missing.*vendor_artwork"):
        collect(mixed(sources=("artwork",)), SplitConfig(), workers=1, artwork_dir=tmp_path)


def test_validate_reports_the_origins_apart() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for origin, noise in (("synthetic", 0.01), ("artwork", 0.08)):
        for logo in range(6):
            actual = rng.uniform(0.7, 1.0, 5)
            for sample, a in enumerate(actual):
                rows.append(
                    {
                        "image_id": f"{origin}{logo}",
                        "origin": origin,
                        "size": 256,
                        "sample": sample,
                        "actual": a,
                        "predicted": a + rng.normal(0, noise),
                    }
                )
    pred = pd.DataFrame(rows)
    for name in PARAM_NAMES:  # row 0 of each logo is VTracer's defaults
        pred[name] = np.where(pred["sample"] == 0, VTRACER_DEFAULTS[name], pred["sample"] + 100)
    out = per_origin_metrics(pred)
    assert set(out) == {"artwork", "synthetic"}
    assert out["synthetic"]["rmse"] < out["artwork"]["rmse"]
    assert out["artwork"]["n_images"] == 6 and out["synthetic"]["n"] == 30
    assert per_origin_metrics(pred[pred["origin"] == "synthetic"]) == {}  # one origin: none

    class Res:
        per_origin = out

    text = "\n".join(_origin_lines(Res()))
    assert "## Per source" in text and "| artwork | 30 | 6 |" in text


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("spotify-logo-2", False),
        ("amazon-web-services-logo", False),
        ("wechat", False),
        ("adobe-photoshop", False),
        ("crypto-currency-bitcoin-chip", False),
        ("apple", False),
        ("flag-for-chile", False),
        ("flag-england", False),
        ("japanflag", False),
        ("red-apple", True),
        ("pineapple", True),
        ("flag-storm-warning", True),
        ("login-logout-key", True),
        ("grinning-face", True),
    ],
)
def test_brand_logos_and_national_flags_inside_allowed_sets_are_not_training(name, allowed):
    assert training_icon(name) is allowed


def test_the_vendored_sets_hold_no_brand_logo_or_national_flag() -> None:
    for name in VENDORED:
        icons = artwork.read_vendored(ARTWORK / f"{name}.json")
        assert len(icons) == 120
        assert [i.name for i, _ in icons if not training_icon(i.name)] == [], name

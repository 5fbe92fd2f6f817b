"""Shipped catalogues: idempotent loads, user edits that survive, clear errors for bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedopt_core import catalog
from fedopt_core.config import DEFAULT_DATA_DIR


def test_lambda_catalogue_has_at_least_20_gpu_types_with_prices(loaded_db: str) -> None:
    frame = catalog.list_platforms(provider="lambda", include_cpu=False)
    assert len(frame) >= 20
    assert frame["price_per_hour_usd"].gt(0).all()
    assert frame["gpu_count"].ge(1).all()
    expected = frame["price_per_hour_usd"] / frame["gpu_count"]
    assert (frame["price_per_gpu_hour_usd"] - expected).abs().max() < 1e-9
    # Catalogue GPU names resolve to the canonical spec names the predictor uses.
    assert "H100 SXM5 80GB" in set(frame["gpu_type"])


def test_techniques_catalogue_is_complete_and_accurate(loaded_db: str) -> None:
    frame = catalog.list_techniques()
    assert len(frame) >= 20
    names = " ".join(frame["name"]).lower()
    for words in ["github student", "spot", "checkpoint", "right-siz", "shutdown"]:
        assert words in names, words
    spot = frame[frame["name"].str.lower().str.contains("spot")].iloc[0]
    assert spot["savings_max_pct"] == 90
    # Lambda says it has no formal credit programme for students or researchers.
    access = frame[frame["kind"] == "access"]
    assert not any("lambda" in platforms for platforms in access["platforms"])
    assert frame["source_url"].str.startswith("http").all()


def test_loading_twice_changes_nothing(loaded_db: str) -> None:
    before_platforms = catalog.list_platforms()
    before_techniques = catalog.list_techniques()
    report = catalog.load_all()
    assert report.inserted == 0 and report.updated == 0 and not report.errors
    after = catalog.list_platforms()
    assert len(after) == len(before_platforms)
    assert after["price_per_hour_usd"].tolist() == before_platforms["price_per_hour_usd"].tolist()
    assert len(catalog.list_techniques()) == len(before_techniques)


def test_user_edits_and_added_platforms_survive_a_reload(loaded_db: str) -> None:
    frame = catalog.list_platforms(search="gpu_1x_a10")
    row = frame[frame["instance_type"] == "gpu_1x_a10"].iloc[0]
    catalog.save_platform(
        {
            "provider": "lambda",
            "instance_type": "gpu_1x_a10",
            "gpu_type": row["gpu_type"],
            "gpu_count": 1,
            "price_per_hour_usd": 0.01,
        },
        platform_id=int(row["id"]),
    )
    own_id = catalog.save_platform(
        {
            "provider": "on-prem",
            "instance_type": "lab-dgx",
            "gpu_type": "NVIDIA A100-SXM4-80GB",
            "gpu_count": 8,
            "price_per_hour_usd": 0,
        }
    )
    report = catalog.load_all()
    assert report.kept_user_edits >= 1
    edited = catalog.list_platforms(search="gpu_1x_a10")
    assert edited.loc[edited["instance_type"] == "gpu_1x_a10", "price_per_hour_usd"].item() == 0.01
    own = catalog.list_platforms(provider="on-prem")
    assert own["id"].tolist() == [own_id]
    assert own["gpu_type"].item() == "A100 SXM4 80GB"  # the spelling was normalised
    history = catalog.price_history(int(row["id"]))
    assert history["price_per_hour_usd"].tolist()[-1] == 0.01


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"provider": "", "instance_type": "x", "gpu_type": "A10", "gpu_count": 1}, "provider"),
        ({"provider": "p", "instance_type": "", "gpu_type": "A10", "gpu_count": 1}, "instance_type"),
        ({"provider": "p", "instance_type": "x", "gpu_type": "A10", "gpu_count": 0}, "gpu_count"),
        (
            {"provider": "p", "instance_type": "x", "gpu_type": "A10", "gpu_count": 1, "price_per_hour_usd": -2},
            "price_per_hour_usd",
        ),
        ({"provider": "p", "instance_type": "x", "gpu_type": "A10", "gpu_count": 1, "ram_gb": "lots"}, "ram_gb"),
        (
            {"provider": "p", "instance_type": "x", "gpu_type": "A10", "gpu_count": 1, "spot_price_per_hour_usd": -0.5},
            "spot_price_per_hour_usd",
        ),
    ],
)
def test_bad_platform_input_names_the_field_and_writes_nothing(loaded_db: str, values: dict, field: str) -> None:
    before = len(catalog.list_platforms())
    with pytest.raises(catalog.CatalogueInputError) as info:
        catalog.save_platform(values)
    assert info.value.field == field
    assert len(catalog.list_platforms()) == before


def test_a_malformed_catalogue_row_is_reported_and_the_rest_loads(empty_db: str, tmp_path: Path) -> None:
    source = DEFAULT_DATA_DIR / catalog.PLATFORM_FILE
    broken = tmp_path / catalog.PLATFORM_FILE
    lines = source.read_text(encoding="utf-8").splitlines()
    first_data = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1  # after the header
    good_rows = len(lines) - first_data
    lines[first_data] = lines[first_data].replace(",", ",oops,", 1)  # one field too many
    lines.insert(first_data + 1, "gpu_9x_bogus,Bogus,A10,lots,24,30,200,,,1.0,us-east-1,2026-09-25,test")
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = catalog.load_platforms(broken)
    assert [e.line for e in report.errors] == [first_data + 1, first_data + 2]
    assert all(str(broken) in str(e) for e in report.errors)
    assert report.inserted == good_rows - 1


def test_filters_that_match_nothing_give_an_empty_frame(loaded_db: str) -> None:
    assert catalog.list_platforms(search="no-such-machine").empty
    assert catalog.list_platforms(max_price_per_hour_usd=0.0001, include_cpu=False).empty
    assert catalog.list_techniques(search="zzzz-nothing").empty


def test_filters_select_what_they_say(loaded_db: str) -> None:
    eight = catalog.list_platforms(min_gpu_count=8)
    assert len(eight) and eight["gpu_count"].ge(8).all()
    cheap = catalog.list_platforms(max_price_per_hour_usd=2.0)
    assert len(cheap) and cheap["price_per_hour_usd"].le(2.0).all()
    spot = catalog.list_techniques(search="spot", kind="optimisation")
    assert len(spot) and spot["kind"].eq("optimisation").all()


def test_gpu_specs_are_stored(loaded_db: str) -> None:
    from sqlmodel import select

    from fedopt_core.db import session_scope
    from fedopt_core.models import GpuSpec

    with session_scope() as session:
        names = {g.gpu_name for g in session.exec(select(GpuSpec)).all()}
    assert {"H100 SXM5 80GB", "GH200 96GB", "B200"} <= names


def test_other_clouds_import_with_spot_prices_and_twice_adds_nothing(loaded_db: str, shared_data) -> None:
    report = catalog.import_cloud_prices(shared_data / "cloud_gpu_prices.csv")
    assert report.inserted >= 30 and not report.errors
    imported = catalog.list_platforms(provider=["nebius", "runpod", "gcp", "vast"])
    assert len(imported) == report.inserted
    spot = imported[imported["spot_price_per_hour_usd"].notna()]
    assert len(spot) and (spot["spot_price_per_hour_usd"] <= spot["price_per_hour_usd"]).all()
    assert (spot["spot_price_per_hour_usd"] < spot["price_per_hour_usd"]).sum() >= 4
    assert set(imported["gpu_type"]) <= set(catalog.gpus.spec_table()["gpu_name"])  # names resolve
    again = catalog.import_cloud_prices(shared_data / "cloud_gpu_prices.csv")
    assert again.inserted == 0 and again.updated == 0

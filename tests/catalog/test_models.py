"""The model catalogue: the open models people bring, found however they are written."""

from __future__ import annotations

import pytest

from fedopt_core.catalog import models
from fedopt_core.errors import CatalogueInputError


def test_the_catalogue_holds_the_models_the_issue_lists() -> None:
    table = models.list_models()
    assert len(table) >= 40
    assert table["model_id"].is_unique
    wanted = [
        "llama-2-7b", "llama-3-8b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.3-70b", "mistral-7b",
        "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-0.5b", "qwen2.5-72b", "gemma-2-9b", "phi-3-mini", "phi-4",
        "deepseek-v3", "deepseek-r1", "gpt-oss-20b", "gpt-oss-120b", "mpt-7b", "gpt2", "gpt-j-6b",
        "bert-large", "t5-base", "vit-b-16", "resnet-50", "stable-diffusion-v2",
    ]  # fmt: skip
    assert not [m for m in wanted if m not in set(table["model_id"])]
    assert (table["active_params_b"] <= table["total_params_b"]).all()
    assert table["source_url"].str.startswith("http").all()


@pytest.mark.parametrize(
    ("written", "model_id"),
    [
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-8B", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("Llama3.1 8B", "llama-3.1-8b"),
        ("llama2-70b", "llama-2-70b"),
        ("mixtral-8x7b", "mixtral-8x7b"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("gpt3_xl", "gpt-3-xl"),
        ("resnet50", "resnet-50"),
    ],
)
def test_a_model_is_found_by_the_names_people_write(written: str, model_id: str) -> None:
    found = models.find_model(written)
    assert found is not None and found.model_id == model_id


def test_names_of_other_models_are_not_matched() -> None:
    assert models.find_model("llama-3.1-9b") is None
    assert models.find_model("qwen2.5-8b") is None
    assert models.find_model("") is None and models.find_model(None) is None


def test_published_numbers_of_three_models() -> None:
    llama = models.find_model("llama-3.1-70b")
    # meta-llama/Llama-3.1-70B config.json
    assert (llama.n_layers, llama.hidden_size, llama.n_heads, llama.n_kv_heads, llama.vocab_size) == (
        80, 8192, 64, 8, 128256,
    )  # fmt: skip
    mixtral = models.find_model("mixtral-8x7b")
    assert mixtral.is_moe and (mixtral.n_experts, mixtral.experts_per_token) == (8, 2)
    assert mixtral.active_params_b < mixtral.total_params_b
    bert = models.find_model("bert-large")
    assert not bert.is_decoder and bert.max_context == 512
    assert not models.find_model("resnet-50").is_transformer


def test_an_unlisted_model_is_described_by_its_numbers_and_says_what_was_estimated() -> None:
    spec = models.describe_model(8.0)
    # N ~ 12 L d^2 with d = 128 L: L = (8e9 / (12 x 128^2))^(1/3) = 34.4
    assert spec.n_layers == 34
    assert 12 * spec.n_layers * spec.hidden_size**2 == pytest.approx(8e9, rel=0.05)
    assert set(spec.estimated) >= {"n_layers", "hidden_size", "n_kv_heads"}
    given = models.describe_model(7.0, n_layers=32, hidden_size=4096, n_kv_heads=8)
    assert (given.n_layers, given.hidden_size, given.n_kv_heads) == (32, 4096, 8)
    assert "n_layers" not in given.estimated
    with pytest.raises(CatalogueInputError) as err:
        models.describe_model(-3)
    assert err.value.field == "model_params_b"


def test_a_job_names_its_model_by_workload_or_by_size() -> None:
    assert models.resolve_model("llama-3.1-8b").model_id == "llama-3.1-8b"
    assert models.resolve_model("my-own-model", 3.0).total_params_b == 3.0
    assert models.resolve_model("my-own-model") is None
    # a size far from the catalogue's is the user's own variant
    assert models.resolve_model("llama-3.1-8b", 11.0).total_params_b == 11.0

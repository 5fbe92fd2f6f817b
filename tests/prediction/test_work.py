"""Work and memory from first principles, checked against cases computed by hand.

The three models are written out from their published configs (Hugging Face config.json of
meta-llama/Llama-3.1-8B, meta-llama/Llama-3.1-70B and mistralai/Mixtral-8x7B-v0.1), so these
tests check the formulas, not the catalogue file (test_models.py checks that).
"""

from __future__ import annotations

import pytest

from fedopt_core.catalog.models import ModelSpec
from fedopt_core.prediction import work

LLAMA_8B = ModelSpec(
    model_id="llama-3.1-8b", name="Llama 3.1 8B", family="llama-3", kind="decoder",
    total_params_b=8.03, active_params_b=8.03, n_layers=32, hidden_size=4096, n_heads=32,
    n_kv_heads=8, head_dim=128, vocab_size=128256, max_context=131072,
)  # fmt: skip
LLAMA_70B = ModelSpec(
    model_id="llama-3.1-70b", name="Llama 3.1 70B", family="llama-3", kind="decoder",
    total_params_b=70.6, active_params_b=70.6, n_layers=80, hidden_size=8192, n_heads=64,
    n_kv_heads=8, head_dim=128, vocab_size=128256, max_context=131072,
)  # fmt: skip
MIXTRAL = ModelSpec(
    model_id="mixtral-8x7b", name="Mixtral 8x7B", family="mixtral", kind="moe",
    total_params_b=46.7, active_params_b=12.9, n_layers=32, hidden_size=4096, n_heads=32,
    n_kv_heads=8, head_dim=128, vocab_size=32000, max_context=32768, n_experts=8, experts_per_token=2,
)  # fmt: skip
GB = 1e9


# ---------------------------------------------------------------- FLOPs


def test_training_flops_per_token_are_6n_plus_the_attention_term() -> None:
    # 6 x 8.03e9 + 12 x 32 layers x 4096 width x 4096 tokens = 48.18e9 + 6.4425e9
    assert work.flops_per_token(LLAMA_8B, "pretrain", 4096) == pytest.approx(54.6225e9, rel=1e-4)
    assert work.flops_per_token(LLAMA_8B, "full-ft", 4096) == work.flops_per_token(LLAMA_8B, "pretrain", 4096)


def test_lora_skips_the_weight_gradients() -> None:
    # 4 x 8.03e9 + 8 x 32 x 4096 x 4096 = 32.12e9 + 4.295e9
    assert work.flops_per_token(LLAMA_8B, "lora", 4096) == pytest.approx(36.415e9, rel=1e-4)
    assert work.flops_per_token(LLAMA_8B, "qlora", 4096) == work.flops_per_token(LLAMA_8B, "lora", 4096)


def test_a_forward_pass_is_2n_plus_its_attention() -> None:
    # 2 x 70.6e9 + 4 x 80 x 8192 x 2048 = 141.2e9 + 5.3687e9
    assert work.flops_per_token(LLAMA_70B, "forward", 2048) == pytest.approx(146.5687e9, rel=1e-4)


def test_generation_counts_active_parameters_and_the_prompt_prefill() -> None:
    # decode: 2 x 12.9e9 + 4 x 32 x 4096 x (1000 + 200/2) = 25.8e9 + 0.5767e9
    # prefill per generated token: (1000/200) x (25.8e9 + 2 x 32 x 4096 x 1000) = 5 x 26.0621e9
    got = work.flops_per_token(MIXTRAL, "offline", 1200, prompt_tokens=1000, output_tokens=200)
    assert got == pytest.approx(25.8e9 + 0.576717e9 + 130.3107e9, rel=1e-4)


def test_decode_reads_the_weights_once_per_batch_and_the_kv_cache_per_sequence() -> None:
    # bf16 weights 16.06e9 B over 32 sequences + KV 2 x 32 x 8 x 128 x 2 B = 131,072 B/token x 2048
    got = work.decode_bytes_per_token(LLAMA_8B, "bf16", context=2048, concurrency=32)
    assert got == pytest.approx(16.06e9 / 32 + 131072 * 2048, rel=1e-6)
    # fp8 halves both
    fp8 = work.decode_bytes_per_token(LLAMA_8B, "fp8", context=2048, concurrency=32)
    assert fp8 == pytest.approx(got / 2, rel=1e-6)


# ---------------------------------------------------------------- memory


def test_70b_full_fine_tune_needs_142_gb_per_gpu_on_one_8x80_node() -> None:
    # Best layout, tensor parallel over 8: states 16 B x 70.6e9 / 8 = 141.2e9; activations with
    # checkpointing (80 x 2 + 34) x 4096 x 8192 / 8 = 0.8137e9; logits 4 x 4096 x 128256 / 8 = 0.2627e9
    result = work.fit(LLAMA_70B, "full-ft", "bf16", 8, 80)
    assert not result.fits
    assert result.memory.layout == "tensor parallel"
    assert result.memory_per_gpu_gb == pytest.approx(141.2 + 0.81370 + 0.26267, rel=1e-4)
    assert result.reason.startswith("needs 143 GB per GPU, has 80")


def test_70b_bf16_inference_does_not_fit_one_80_gb_gpu() -> None:
    # 141.2 GB of weights + KV 2 x 80 x 8 x 128 x 2 B x 4096 tokens = 1.342 GB
    result = work.fit(LLAMA_70B, "offline", "bf16", 1, 80)
    assert not result.fits
    assert result.memory_per_gpu_gb == pytest.approx(141.2 + 1.34218, rel=1e-4)
    assert work.fit(LLAMA_70B, "offline", "bf16", 2, 80).fits  # tensor parallel over two: 71.3 GB each
    assert work.smallest_fitting_count(LLAMA_70B, "offline", "bf16", 80) == 2


def test_8b_full_fine_tune_not_on_one_h100_but_sharded_over_8_a100_80gb() -> None:
    one = work.fit(LLAMA_8B, "full-ft", "bf16", 1, 80)
    # 16 x 8.03e9 + (32 x 2 + 34) x 4096 x 4096 + 4 x 4096 x 128256
    assert one.memory_per_gpu_gb == pytest.approx(128.48 + 1.64416 + 2.10134, rel=1e-4)
    assert not one.fits
    eight = work.fit(LLAMA_8B, "full-ft", "bf16", 8, 80)
    assert eight.fits and eight.memory.layout == "fully sharded"
    assert eight.memory_per_gpu_gb == pytest.approx(128.48 / 8 + 1.64416 + 2.10134, rel=1e-4)


def test_8b_bf16_inference_fits_one_24_gb_a10_at_the_default_context() -> None:
    result = work.fit(LLAMA_8B, "offline", "bf16", 1, 24)
    assert result.fits
    # 16.06 GB of weights + one 4096-token sequence's KV cache, 131,072 B/token
    assert result.memory_per_gpu_gb == pytest.approx(16.06 + 0.536871, rel=1e-4)
    # ... but not with 64 sequences of 4096 tokens cached at once
    assert not work.fit(LLAMA_8B, "offline", "bf16", 1, 24, concurrency=64).fits


def test_lora_and_qlora_keep_frozen_weights_small() -> None:
    lora = work.memory_per_gpu(LLAMA_70B, "lora", "bf16", 1, "single")
    qlora = work.memory_per_gpu(LLAMA_70B, "qlora", "bf16", 1, "single")
    assert lora.parts["weights"] == pytest.approx(2.0 * 70.6e9)
    assert qlora.parts["weights"] == pytest.approx(0.56 * 70.6e9)
    assert lora.parts["adapters"] == pytest.approx(0.005 * 70.6e9 * 16)
    assert work.fit(LLAMA_70B, "qlora", "bf16", 1, 80).fits
    assert not work.fit(LLAMA_70B, "lora", "bf16", 1, 80).fits


def test_checkpointing_keeps_one_layer_input_instead_of_every_activation() -> None:
    with_ckpt = work.memory_per_gpu(LLAMA_8B, "pretrain", "bf16", 1, "single", micro_batch=2)
    without = work.memory_per_gpu(LLAMA_8B, "pretrain", "bf16", 1, "single", micro_batch=2, checkpointing=False)
    sbd = 4096 * 2 * 4096
    assert with_ckpt.parts["activations"] == pytest.approx((32 * 2 + 34) * sbd)
    assert without.parts["activations"] == pytest.approx(32 * 34 * sbd)


def test_mixture_of_experts_stores_every_expert() -> None:
    served = work.memory_per_gpu(MIXTRAL, "serving", "bf16", 1, "single")
    assert served.parts["weights"] == pytest.approx(2 * 46.7e9)


@pytest.mark.parametrize("model", [LLAMA_8B, LLAMA_70B, MIXTRAL])
@pytest.mark.parametrize("mode", ["pretrain", "lora", "offline"])
def test_more_gpus_never_need_more_memory_per_gpu(model: ModelSpec, mode: str) -> None:
    previous = float("inf")
    for count in (1, 2, 4, 8, 16, 32, 64):
        best = min(
            work.memory_per_gpu(model, mode, "bf16", count, layout).total_bytes for layout in work._layouts(mode, count)
        )
        assert best <= previous * (1 + 1e-12)
        previous = best


def test_the_smallest_fitting_count_is_the_first_that_fits() -> None:
    count = work.smallest_fitting_count(LLAMA_70B, "full-ft", "bf16", 80)
    assert count is not None
    assert work.fit(LLAMA_70B, "full-ft", "bf16", count, 80).fits
    smaller = count // 2 if count <= 8 else count - 8
    assert not work.fit(LLAMA_70B, "full-ft", "bf16", smaller, 80).fits

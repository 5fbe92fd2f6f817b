"""Does "mean TPOT = sequences decoded together / tokens per second" hold on measured serving runs?

:mod:`fedopt_core.planning.serving` derives a time per output token from a replica's rate and the
number of sequences it decodes together, and says the measured p99 is about twice that mean.  On
ML.ENERGY's vLLM runs in ``../shared/data/llm_runs.csv`` (the rows with a measured p99 TPOT, a
token rate and the batch the engine ran) this prints the ratio of the measured p99 TPOT to the
derived mean, per run, as quartiles.  The baseline in the same run is the same derivation from the
*stated* concurrency (``max_num_seqs``, what a user types) instead of the batch the engine ran.

    .venv/bin/python benchmarks/serving_tpot.py [--data ../shared/data/llm_runs.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "llm_runs.csv").resolve()


def ratios(frame: pd.DataFrame, sequences: str) -> np.ndarray:
    """Measured p99 TPOT over the derived mean (sequences / tokens per second), per run."""
    mean_ms = frame[sequences] / frame["tokens_per_s_total"] * 1000.0
    return (frame["tpot_p99_ms"] / mean_ms).to_numpy(float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    runs = pd.read_csv(args.data)
    rows = runs.dropna(subset=["tpot_p99_ms", "tokens_per_s_total", "avg_batch_size", "max_num_seqs"])
    rows = rows[(rows["tokens_per_s_total"] > 0) & (rows["avg_batch_size"] > 0)]
    print(f"{len(rows)} runs with a measured p99 TPOT ({', '.join(sorted(rows['source'].unique()))}), "
          f"{rows['gpu_type'].nunique()} GPU models, {rows['workload'].nunique()} models")  # fmt: skip
    for label, column in (
        ("batch the engine ran", "avg_batch_size"),
        ("stated concurrency (baseline)", "max_num_seqs"),
    ):
        r = ratios(rows, column)
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        log_spread = float(np.median(np.abs(np.log(r / med))))
        print(f"p99 / derived mean TPOT from the {label}: median {med:.2f} (quartiles {q1:.2f}-{q3:.2f}), "
              f"median |log(ratio / median)| {log_spread:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

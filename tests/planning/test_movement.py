"""Data movement (fedopt_core.planning.movement): the time a job's data takes to move, one home."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedopt_core.planning import (
    DEFAULT_NETWORK_SPEED_MBPS,
    FALLBACK_NETWORK_SPEED_MBPS,
    PlanningError,
    data_movement_s,
    transfer_time_s,
)

# ---------------------------------------------------------------------------------------------------------------
# Data movement
# ---------------------------------------------------------------------------------------------------------------


def test_transfer_time_is_bytes_times_eight_over_speed():
    t = transfer_time_s(1000.0, 250.0, 100.0)
    assert t.shape == (1,)
    assert t[0] == pytest.approx((1000.0 + 250.0) * 8 / 100.0)


def test_transfer_time_vectorised_and_defaults_by_provider():
    sizes = pd.Series([100.0, 100.0, 100.0, np.nan])
    speed = pd.Series([np.nan, np.nan, 400.0, 50.0])
    t = transfer_time_s(sizes, 0.0, speed, pd.Series(["AWS", "some new cloud", "vast", "lambda"]))
    assert isinstance(t, np.ndarray) and t.shape == (4,)
    assert t[0] == pytest.approx(800.0 / DEFAULT_NETWORK_SPEED_MBPS["aws"])
    assert t[1] == pytest.approx(800.0 / FALLBACK_NETWORK_SPEED_MBPS)
    assert t[2] == pytest.approx(800.0 / 400.0)  # a given speed wins over the default
    assert t[3] == 0.0  # unknown size: nothing known to move


def test_transfer_time_provider_aliases():
    t = transfer_time_s([10.0, 10.0], [0.0, 0.0], [np.nan, np.nan], ["Google Cloud", "Vast.ai"])
    assert t[0] == pytest.approx(80.0 / DEFAULT_NETWORK_SPEED_MBPS["gcp"])
    assert t[1] == pytest.approx(80.0 / DEFAULT_NETWORK_SPEED_MBPS["vast"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1.0, 0.0, 100.0), "input_size_mb"),
        ((1.0, -5.0, 100.0), "output_size_mb"),
        ((1.0, 0.0, 0.0), "network_speed_mbps"),
        ((1.0, 0.0, -10.0), "network_speed_mbps"),
        (("lots", 0.0, 10.0), "input_size_mb"),
    ],
)
def test_transfer_time_bad_input_names_field(args, field):
    with pytest.raises(PlanningError) as err:
        transfer_time_s(*args)
    assert err.value.field == field
    assert field in str(err.value)


def test_data_movement_uses_each_platforms_speed_or_its_providers_default():
    platforms = pd.DataFrame(
        {
            "platform": ["a", "b", "c"],
            "provider": ["lambda", "aws", None],
            "network_speed_mbps": [np.nan, 1000.0, np.nan],
        }
    )
    task = {"input_size_mb": 4500.0, "output_size_mb": 500.0}
    before = platforms.copy()
    seconds = data_movement_s(task, platforms)
    pd.testing.assert_frame_equal(platforms, before)  # input untouched
    assert seconds.tolist() == pytest.approx(
        [5000 * 8 / DEFAULT_NETWORK_SPEED_MBPS["lambda"], 5000 * 8 / 1000.0, 5000 * 8 / FALLBACK_NETWORK_SPEED_MBPS]
    )
    assert data_movement_s({}, platforms).tolist() == [0.0, 0.0, 0.0]  # nothing known to move

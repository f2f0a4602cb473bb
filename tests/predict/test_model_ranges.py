"""What a model knows about its training shapes a prediction: the tilt ranges it was trained
on (the input's own range is used, within half a degree of a trained one; a model of several
ranges asks for it), and half-set training (keep_measured would put the noise back)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryogen.errors import InputError
from cryogen.predict import PredictOptions, predict_volume, tta_rotations
from predict.fakes import make_model, wedged


def test_a_refined_range_counts_as_the_trained_one_and_is_used():
    model = make_model(torch.nn.Identity())
    assert model.check_tilt_range(-59.98, 60.03, "TS_01.mrc") == (-59.98, 60.03)
    with pytest.raises(InputError, match=r"TS_01.mrc: tilt range \[-58, 60\] deg"):
        model.check_tilt_range(-58.0, 60.0, "TS_01.mrc")


def test_a_model_of_several_ranges_predicts_each_tomogram_with_its_own():
    model = replace(make_model(torch.nn.Identity()), tilt_ranges=[(-60.0, 60.0), (-54.0, 62.0)])
    v = wedged((20, 20, 20))
    with pytest.raises(InputError, match="give its tilt range"):
        predict_volume(model, v, PredictOptions(overlap=4, tta=True))
    assert tta_rotations(model, True, (-54.0, 62.0)) != tta_rotations(model, True, (-60.0, 60.0))
    out = predict_volume(model, v, PredictOptions(overlap=4, tta=True, tilt_range=(-54.0, 62.0)))
    np.testing.assert_allclose(out, v, atol=1e-4)  # the identity, whatever the rotations


def test_keep_measured_is_refused_for_a_half_set_model():
    model = replace(make_model(torch.nn.Identity()), half_sets=True)
    v = wedged((16, 16, 16))
    predict_volume(model, v, PredictOptions(overlap=4))  # without keep_measured it predicts
    with pytest.raises(InputError, match="half-sets.*keep_measured"):
        predict_volume(model, v, PredictOptions(overlap=4, keep_measured=True))

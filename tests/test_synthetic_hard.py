"""The hard synthetic preset and the generator's hardness controls (camera shift, occlusion)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from reid_ext.data import synthetic
from reid_ext.data.options import set_dataset_options
from reid_ext.data.synthetic_draw import (
    OCCLUDED_SCORE,
    camera_rng,
    harden_camera,
    make_camera,
    render_sample,
)


def test_default_sets_keep_their_folder_signature():
    for kind, defaults in synthetic.DEFAULT_OPTIONS.items():
        # the payload the generator hashed before the hardness controls existed
        old = json.dumps({"kind": kind, "version": synthetic.GENERATOR_VERSION, **defaults},
                         sort_keys=True)
        expected = hashlib.sha1(old.encode()).hexdigest()[:10]
        assert synthetic.signature(kind, synthetic.resolve_options(kind, {})) == expected
    hard = synthetic.resolve_options("person", {}, synthetic.PRESETS["synthetic_person_hard"][1])
    assert synthetic.signature("person", hard) != expected


def test_camera_shift_widens_the_gap_between_cameras():
    def spread(shift: float) -> float:
        cams = [harden_camera(make_camera(camera_rng(0, "person", c), "person"), shift)
                for c in range(1, 9)]
        return float(np.std([c.gain * c.cast for c in cams], axis=0).mean())

    assert spread(1.0) > 0
    assert spread(2.5) > 2.0 * spread(1.0)
    same = make_camera(camera_rng(0, "person", 3), "person")
    assert harden_camera(same, 1.0) is same


def test_occlusion_control_occludes_more_often():
    def occluded_fraction(amount: float) -> float:
        hits = 0
        for pid in range(1, 41):
            kp = render_sample("person", 0, pid, 1, 1, 64, 32, occlusion=amount).keypoints
            hits += bool(np.any(np.isclose(kp[:, 2], OCCLUDED_SCORE)))
        return hits / 40

    base, hard = occluded_fraction(1.0), occluded_fraction(3.0)
    assert hard > base + 0.2
    a = render_sample("person", 0, 5, 2, 1, 64, 32)
    b = render_sample("person", 0, 5, 2, 1, 64, 32, camera_shift=1.0, occlusion=1.0)
    assert np.array_equal(a.image, b.image)


def test_hard_preset_builds_in_its_own_folder(tmp_path):
    set_dataset_options("synthetic_person_hard", num_train_ids=3, num_test_ids=2,
                        images_per_id_per_camera=2, num_cameras=2, height=64, width=32)
    data = synthetic.SyntheticPersonHard(root=str(tmp_path), mode="train", verbose=False)
    assert Path(data.dataset_dir).parent.name == "synthetic_person_hard"
    assert data.options["camera_shift"] == 250 and data.options["occlusion"] == 250
    assert len({item[1] for item in data.train}) == 3
    assert synthetic.resolve_options("person", {}, synthetic.PRESETS[
        "synthetic_person_hard"][1])["num_train_ids"] == 200

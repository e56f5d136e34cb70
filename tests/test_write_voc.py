"""``python -m imbench.data_recipes.scenes.write_voc``: the long-tailed VOC-layout set it writes is
read back by the VOC loader with exactly the counts it promises."""
from __future__ import annotations

import math

from imbench.data_recipes.scenes import load_scenes
from imbench.data_recipes.scenes.recipes import apply_scene_recipe
from imbench.data_recipes.scenes.write_voc import longtail_counts, main


def test_longtail_counts_fall_geometrically_from_n_max_to_n_min():
    assert longtail_counts(291, 2) == [291, 167, 96, 55, 31, 18, 10, 6, 3, 2]
    assert longtail_counts(5, 5) == [5] * 10


def test_the_written_set_reads_back_with_its_counts(tmp_path, capsys):
    assert main([str(tmp_path / "lt"), "--image-size", "64", "--n-max", "12", "--n-min", "2",
                 "--heights", "6,10", "--test-per-class", "3"]) == 0
    src = load_scenes("voc", data_root=str(tmp_path / "lt"))
    assert src.info["split"] == "official"
    assert src.train.instance_counts() == longtail_counts(12, 2)
    assert src.test.instance_counts() == [3] * 10
    assert src.train.class_names == [f"d{c}" for c in range(10)]
    heights = [float(b[3] - b[1]) for t in src.train.targets for b in t["boxes"]]
    assert min(heights) >= 5 and max(heights) <= 11  # 6-10 px digits, boxes rounded outwards
    nat = apply_scene_recipe(src, "natural", {}, 0)
    mid = math.sqrt(12 * 2)
    assert nat.minority == [c for c, n in enumerate(longtail_counts(12, 2)) if n < mid]
    # the same arguments write the same files
    assert main([str(tmp_path / "again"), "--image-size", "64", "--n-max", "12", "--n-min", "2",
                 "--heights", "6,10", "--test-per-class", "3"]) == 0
    a, b = (sorted((p.relative_to(r), p.read_bytes()) for p in r.rglob("*") if p.is_file())
            for r in (tmp_path / "lt", tmp_path / "again"))
    assert a == b


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "x"), "--heights", "3"]) == 2
    assert main([str(tmp_path / "x"), "--n-min", "5", "--n-max", "2"]) == 2
    assert main([str(tmp_path / "x"), "--image-size", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("write_voc: ") for line in err)

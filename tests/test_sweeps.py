"""Every sweep file builds and checks all its points at both scales (a dry run)."""

import pathlib

import pytest

from bioknow import launch

SWEEPS = sorted((pathlib.Path(__file__).resolve().parents[1] / "sweeps").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["small", "paper"])
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_dry_runs(path, scale):
  module = launch.load_sweep(str(path))
  doc = module.__doc__.strip().splitlines()
  assert doc[0].startswith(f"python -m bioknow.launch --sweep=sweeps/{path.name}"), doc[0]
  assert "Runtime" in module.__doc__ and "Figure" in module.__doc__
  points = launch.build_points(module, scale, [], None)
  assert points
  assert len({name for name, *_ in points}) == len(points)


@pytest.mark.slow
def test_sweep_point_counts():
  counts = {
    (p.stem, s): len(launch.build_points(launch.load_sweep(str(p)), s, [], None))
    for p in SWEEPS
    for s in ("small", "paper")
  }
  assert counts[("population", "paper")] == 7 * 5 * 5
  assert counts[("curricula", "paper")] == 6 * 5 * 3 + 3 * 4 + 5 * 5 + 4  # uniform: alpha 0
  assert counts[("templates", "paper")] == 10


def test_missing_sweep_and_missing_function(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    launch.load_sweep(str(tmp_path / "nope.py"))
  (tmp_path / "empty.py").write_text('"""Nothing."""\n')
  with pytest.raises(ValueError, match="has no function sweep"):
    launch.load_sweep(str(tmp_path / "empty.py"))


def test_duplicate_names_are_rejected(tmp_path):
  (tmp_path / "dup.py").write_text(
    "from bioknow import configs\n"
    "def sweep(scale):\n"
    "  yield 'a', configs.pretrain(scale)\n"
    "  yield 'a', configs.pretrain(scale)\n"
  )
  with pytest.raises(ValueError, match="two points are named 'a'"):
    launch.build_points(launch.load_sweep(str(tmp_path / "dup.py")), "small", [], None)


def test_only_filters_and_overrides_apply():
  module = launch.load_sweep(str(SWEEPS[0].parent / "templates.py"))
  points = launch.build_points(module, "small", ["set:train.n_steps=50"], "templates1_*")
  assert [name for name, *_ in points] == ["templates1_shuffled", "templates1_fixed"]
  assert all(p.experiment.train.n_steps == 50 for p in points)
  points = launch.build_points(module, "small", [], "templates1_fixed,templates2_*")
  assert [name for name, *_ in points] == [
    "templates1_fixed",
    "templates2_shuffled",
    "templates2_fixed",
  ]
  with pytest.raises(ValueError, match="closest valid path: optimizer.lr"):
    launch.build_points(module, "small", ["set:optimizer.lrr=1"], None)

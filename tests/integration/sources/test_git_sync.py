"""Git sources from a repository in tmp_path: a file added, modified and deleted between
syncs is added, re-embedded and removed; unchanged files are not even read (same blob)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from core.db.pool import Pool
from core.sources.git import git_uri
from core.sources.sync import SourceSync
from core.sources.types import SourceUnavailable
from tests.integration.sources.test_web_sync import chunk_ids


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def commit(repo: Path, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "docs")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(
        path,
        {
            "README.md": "# Project\n\nNot in the docs folder.",
            "docs/install.md": "# Install\n\nRun the installer and accept the licence.",
            "docs/faq.md": "# FAQ\n\nThe app stores its data in the home folder.",
            "docs/logo.png": "not a document",
            "docs/guide/usage.txt": "Usage\n\nStart the app with the run command.",
        },
    )
    return path


async def test_git_folder_resync_follows_add_modify_delete(
    repo: Path, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    source = await sources.add(guild, str(repo), git=True, folder="docs/")
    first = await sources.sync(source)
    assert (first.added, first.failed) == (3, 0)
    uri = lambda path: git_uri(str(repo), path)  # noqa: E731
    before = await chunk_ids(rag_pool, guild)
    assert set(before) == {uri("docs/install.md"), uri("docs/faq.md"), uri("docs/guide/usage.txt")}

    commit(
        repo,
        {
            "docs/faq.md": "# FAQ\n\nThe app now stores its data in the cloud.",
            "docs/guide/usage.txt": None,
            "docs/new.md": "# New\n\nA new page about plugins.",
        },
    )
    second = await sources.sync(source)
    assert (second.added, second.changed, second.unchanged, second.removed) == (1, 1, 1, 1)
    assert second.not_modified == 1  # install.md: same blob, not read again
    after = await chunk_ids(rag_pool, guild)
    assert after[uri("docs/install.md")] == before[uri("docs/install.md")]
    assert after[uri("docs/faq.md")] != before[uri("docs/faq.md")]
    assert set(after) == {uri("docs/install.md"), uri("docs/faq.md"), uri("docs/new.md")}
    assert not list((Path(sources.settings.data_dir) / "sources").iterdir())  # clone deleted


async def test_unreachable_git_url_is_a_clear_error_and_is_not_kept(
    tmp_path: Path, sources: SourceSync, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    missing = (tmp_path / "nowhere.git").as_uri()
    source = await sources.add(guild, missing)
    assert source.kind == "git"
    with pytest.raises(SourceUnavailable) as failed:
        await sources.sync_new(source)
    assert failed.value.user_message.startswith("git clone failed: ")
    assert "does not appear to be a git repository" in failed.value.user_message
    assert await sources.list(guild) == []  # a source that never synced is not kept

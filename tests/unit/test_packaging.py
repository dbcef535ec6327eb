"""What ships: the licence pyproject names, and an image that runs as an unprivileged user and
is built from a context without the virtualenv, caches or git history."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def test_license_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()
    assert project["license"] == "Apache-2.0"  # an SPDX expression
    assert project["license-files"] == ["LICENSE"]
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, flags=re.M)
    assert users, "no USER instruction: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0  # numeric, so runAsNonRoot can verify it
    after_user = DOCKERFILE[DOCKERFILE.rindex("USER "):]
    assert "ENTRYPOINT" in after_user


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the simple patterns used here: a pattern matches the path or a parent."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(p, pat.removeprefix("**/")) or fnmatch.fnmatch(p, pat)
               for pat in patterns for p in prefixes)


def test_dockerignore_keeps_out_the_noise_and_keeps_what_the_image_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for noise in (".git", ".venv", "tests", "refold/__pycache__", "refold.egg-info", "reports"):
        assert ignored(noise, patterns), noise
    for copy in re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, flags=re.M):
        for source in copy.split():
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), source

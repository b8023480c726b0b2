"""Upload folders left by a crash are swept at start; fresh ones are left alone."""

import os
import time
from pathlib import Path

from inference_club.gateway.uploads import sweep_stale_uploads


def test_only_stale_upload_folders_are_removed(tmp_path: Path) -> None:
    """Folders older than the cutoff go; a fresh one and unrelated files stay."""
    stale = tmp_path / "upload-old"
    fresh = tmp_path / "upload-new"
    other = tmp_path / "keep-me"
    for folder in (stale, fresh, other):
        folder.mkdir()
        (folder / "part").write_bytes(b"x" * 10)
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert sweep_stale_uploads(tmp_path, older_than=3600) == 1
    assert not stale.exists()
    assert fresh.exists()
    assert other.exists()
    assert sweep_stale_uploads(tmp_path / "missing") == 0

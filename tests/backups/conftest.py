import pytest


@pytest.fixture(autouse=True)
def _backup_dir(settings, tmp_path):
    """Every test's backups in a folder of its own."""
    settings.BACKUP_DIR = tmp_path / "backups"

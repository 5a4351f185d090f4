"""Front-end libraries come from their Python packages, served from our own static files."""

from django.contrib.staticfiles import finders


def test_chart_js_2_9_comes_from_django_chartjs():
    path = finders.find("js/Chart.min.js")

    assert path is not None and "/chartjs/static/" in path
    with open(path, encoding="utf-8") as handle:
        assert "Chart.js v2.9." in handle.read(400)


def test_htmx_2_comes_from_django_htmx():
    path = finders.find("django_htmx/htmx-2.min.js")

    assert path is not None and "/django_htmx/static/" in path


VENDORED_NAMES = ("htmx", "chart", "jquery", "bootstrap", "tailwind", "alpine", ".min.")


def test_our_static_folder_holds_no_copied_library():
    ours = [path.lower() for path, _storage in finders.FileSystemFinder().list([])]

    assert "css/app.css" in ours
    assert [path for path in ours if any(name in path for name in VENDORED_NAMES)] == []

"""History filters and exports at the calendar's edge: a date the range arithmetic cannot hold (a day
past 9999-12-31, midnight before year 1 in UTC) is a form error, never a 500 or a truncated file."""

import pytest
from django.urls import reverse

EDGES = [
    {"date_to": "9999-12-31"},
    {"date_from": "0001-01-01"},
    {"date_from": "9999-12-31"},
]
MESSAGE = "Enter a date from 1900-01-01 to 2999-12-31."


@pytest.fixture
def _east_of_utc(settings):
    """Midnight of 0001-01-01 in Tokyo is in year 0 in UTC, where the database's dates stop."""
    settings.TIME_ZONE = "Asia/Tokyo"


@pytest.mark.usefixtures("_east_of_utc")
@pytest.mark.parametrize("query", EDGES)
def test_an_edge_date_is_a_form_error_on_the_history_page(owner_client, query):
    response = owner_client.get(reverse("optimizer:history"), query)

    assert response.status_code == 200
    assert MESSAGE in response.content.decode()


@pytest.mark.usefixtures("_east_of_utc")
@pytest.mark.parametrize("query", EDGES)
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_export_of_an_edge_date_is_refused_before_the_first_byte(owner_client, query, fmt):
    response = owner_client.get(reverse(f"optimizer:history-export-{fmt}"), query)

    assert response.status_code == 400 and not response.streaming
    assert MESSAGE in response.content.decode()


def test_an_export_of_an_invalid_filter_is_refused_not_widened_to_everything(owner_client):
    response = owner_client.get(
        reverse("optimizer:history-export-json"), {"date_from": "2030-01-02", "date_to": "2030-01-01"}
    )

    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


def test_the_widest_valid_range_exports_a_complete_file(owner_client):
    response = owner_client.get(
        reverse("optimizer:history-export-json"), {"date_from": "1900-01-01", "date_to": "2999-12-31"}
    )

    assert response.status_code == 200 and b"".join(response.streaming_content) == b"[\n]\n"

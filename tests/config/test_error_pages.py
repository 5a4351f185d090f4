"""Error pages look like the application and tell the user what to do next."""

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

from tests.html import inline_code


@pytest.mark.django_db
def test_an_unknown_address_gets_our_not_found_page(owner_client):
    response = owner_client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found" in html
    assert 'class="site-nav"' in html  # the navigation is there to carry on


def test_the_server_error_page_stands_alone_and_reassures():
    response = server_error(RequestFactory().get("/"))

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert "nothing you saved is lost" in html
    assert inline_code(html).inline_scripts == 0

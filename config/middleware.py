"""Site-wide response rules that are not Django's own."""

from django.utils.cache import patch_cache_control


def no_store_for_users(get_response):
    """A page or an export made for a logged-in user holds private data: no shared cache (a proxy,
    a CDN) and no browser cache may keep it. Responses that set their own Cache-Control keep it."""

    def middleware(request):
        response = get_response(request)
        if request.user.is_authenticated and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response

    return middleware

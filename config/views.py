"""Logging in and passwords: Django's auth views with our templates. A reset link goes by email, so
the reset is offered only when the site can send email (SMTP_HOST); without it the reset page says
who can set a new password."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy


def password_reset_by_email() -> bool:
    return bool(settings.SMTP_HOST)


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(password_reset_by_email=password_reset_by_email(), **kwargs)


_send_reset_link = auth_views.PasswordResetView.as_view(
    template_name="registration/password_reset.html",
    email_template_name="registration/password_reset_email.txt",
    subject_template_name="registration/password_reset_subject.txt",
    success_url=reverse_lazy("password_reset_done"),
)


@login_not_required
def password_reset(request: HttpRequest) -> HttpResponse:
    """The reset form (the same answer whether or not the address has an account), or the advice to
    ask an administrator when no email can be sent."""
    if not password_reset_by_email():
        return render(request, "registration/password_reset_unavailable.html")
    return _send_reset_link(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 400 page; a form larger than a form may be (a batch of prompts pasted rather than
    uploaded) says how large it may be and what to do instead."""
    too_large = isinstance(exception, RequestDataTooBig)
    context = {
        "too_large": too_large,
        "limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        "max_bytes": settings.BATCH_MAX_BYTES,
    }
    return render(request, "400.html", context, status=400)

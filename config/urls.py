from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from config.views import LoginView, password_reset
from optimizer.metrics import metrics
from optimizer.views import SignOutView

admin.site.site_header = "Prompt Optimizer administration"
admin.site.site_title = "Prompt Optimizer admin"
admin.site.index_title = "Data"
# Its nav sidebar repeats the index page and took 280 px from every list: with the filters on the
# other side the run list ran off a 1280 px screen.
admin.site.enable_nav_sidebar = False

password_urls = [
    path(
        "change/",
        auth_views.PasswordChangeView.as_view(
            template_name="registration/password_change.html",
            success_url=reverse_lazy("password_change_done"),
        ),
        name="password_change",
    ),
    path(
        "change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="registration/password_changed.html"),
        name="password_change_done",
    ),
    path("reset/", password_reset, name="password_reset"),
    path(
        "reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_sent.html",
            extra_context={"timeout_hours": settings.PASSWORD_RESET_TIMEOUT // 3600},
        ),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/password_reset_new.html",
            success_url=reverse_lazy("password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_finished.html"
        ),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", include("optimizer.urls")),
    path("costs/", include("costs.urls")),
    path("backups/", include("backups.urls")),
    path("api/v1/", include("optimizer.monitoring.api_urls")),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", SignOutView.as_view(), name="logout"),
    path("password/", include(password_urls)),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
]

handler400 = "config.views.bad_request"

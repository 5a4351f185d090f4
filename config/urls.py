from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from optimizer.views import SignOutView

admin.site.site_header = "Prompt Optimizer administration"
admin.site.site_title = "Prompt Optimizer admin"
admin.site.index_title = "Data"

urlpatterns = [
    path("", include("optimizer.urls")),
    path("costs/", include("costs.urls")),
    path("backups/", include("backups.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", SignOutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import views as core_views

# The admin carries the service's name; its "View site" link goes to the home page.
admin.site.site_header = settings.SERVICE_NAME
admin.site.site_title = settings.SERVICE_NAME
admin.site.index_title = "Administration"
admin.site.site_url = "/"

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("cache_api.urls")),
    path("", include("contentstore.urls")),
    path("", include("jobs.api_urls")),
    path("", include("subscriptions.urls")),
    path("", include("webhooks.urls")),
]

urlpatterns = [
    path("", core_views.home, name="home"),
    path("docs/<slug:name>/", core_views.document, name="document"),
    path("admin/dashboard/", include("dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/health/", core_views.health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include(api_v1)),
    path("", include("jobs.urls")),
    path("", include("subscriptions.helper_urls")),
    re_path(r"^api/", core_views.api_not_found),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler500 = "core.views.server_error"

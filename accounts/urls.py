from django.urls import re_path

from core.routers import OptionalSlashRouter

from .views import TokenViewSet, UserTokenView

router = OptionalSlashRouter()
router.register("tokens", TokenViewSet, basename="token")

urlpatterns = [
    re_path(r"^user/token/?$", UserTokenView.as_view(), name="user-token"),
    *router.urls,
]

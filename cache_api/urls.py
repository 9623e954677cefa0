from core.routers import OptionalSlashRouter

from .views import CacheViewSet

router = OptionalSlashRouter()
router.register("caches", CacheViewSet, basename="cache")

urlpatterns = router.urls

from django.urls import re_path

from core.routers import OptionalSlashRouter

from . import views

router = OptionalSlashRouter()
router.register("schedule", views.ScheduleViewSet, basename="schedule")
router.register("messageset", views.MessageSetViewSet, basename="messageset")
router.register("message", views.MessageViewSet, basename="message")
router.register("binarycontent", views.BinaryContentViewSet, basename="binarycontent")

urlpatterns = [
    re_path(r"^messageset_languages/?$", views.MessageSetLanguagesView.as_view(), name="messageset-languages"),
    *router.urls,
]

from django.urls import re_path

from core.routers import OptionalSlashRouter

from . import views

router = OptionalSlashRouter()
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("failed-tasks", views.FailedTaskViewSet, basename="failed-task")
router.register("behind-subscriptions", views.BehindSubscriptionViewSet, basename="behindsubscription")

urlpatterns = [
    re_path(r"^schedule/(?P<pk>\d+)/send/?$", views.ScheduleSendView.as_view(), name="schedule-send"),
    re_path(r"^runsendestimate/?$", views.SendEstimateView.as_view(), name="send-estimate"),
    *router.urls,
]

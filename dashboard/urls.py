from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("<slug:slug>.csv", admin.site.admin_view(views.chart_csv), name="dashboard_csv"),
]

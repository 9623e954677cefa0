"""The admin's index links to the operations dashboard (dashboard/views.py)."""

from django.contrib import admin

admin.site.index_template = "admin/dashboard/site_index.html"

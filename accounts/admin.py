from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "language"]
    list_filter = ["language"]
    search_fields = ["user__username"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Profile]:
        # a staff user's own preference only; superusers see everyone's
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

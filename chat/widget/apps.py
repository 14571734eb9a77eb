from django.apps import AppConfig


class WidgetConfig(AppConfig):
    name = "chat.widget"
    label = "widget"
    verbose_name = "Support widget"
    default_auto_field = "django.db.models.BigAutoField"

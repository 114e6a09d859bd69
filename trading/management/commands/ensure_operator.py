import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the operator superuser once, printing its generated password that one time."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")
        parser.add_argument("--email", default="operator@tradedesk.local")
        parser.add_argument("--reset-password", action="store_true", help="generate and print a new password")

    def handle(self, *args, username, email, reset_password, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email=email, password=password)
        elif reset_password:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
        if password:
            self.stdout.write(f"operator login: {username} / {password}  (shown once; keep it)")
        else:
            self.stdout.write(
                f"operator login: {username} (password shown when it was created; "
                "new one: python manage.py ensure_operator --reset-password)"
            )

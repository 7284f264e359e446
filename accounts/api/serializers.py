from __future__ import annotations

from django.conf import settings
from rest_framework import serializers


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["bearer"])
    expires_in = serializers.IntegerField(help_text="Seconds until the token expires.")

    @staticmethod
    def for_token(token: str) -> dict:
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(settings.JWT_ACCESS_TOKEN_LIFETIME_SEC),
        }


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(allow_null=True, help_text="admin, analyst, viewer or null.")
    email = serializers.EmailField(allow_blank=True)
    is_superuser = serializers.BooleanField()

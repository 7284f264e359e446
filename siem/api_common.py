"""REST plumbing shared by every endpoint: body-size-limited JSON parsing and pagination."""

from __future__ import annotations

import io
import json

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.urls import re_path
from django.utils.decorators import sync_and_async_middleware
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class LimitedJSONParser(BaseParser):
    """Strict JSON bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE bytes; larger ones get a clear 413.

    Not a JSONParser subclass on purpose: for those DRF reads `request.body` first, and Django
    then answers an oversized body with its own HTML 400 page. Here the stream is read up to
    limit + 1 bytes, whatever the (possibly absent) Content-Length says.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = _content_length(request)
        if declared is not None and declared > limit:
            raise _too_large(limit)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise _too_large(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(body.decode(encoding), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            pass  # deeper than Python can even parse: over the limit too
        else:
            if not _too_deep(data, MAX_JSON_DEPTH):
                return data
        raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")


# Real records nest a handful of levels; a limit keeps every recursive walk of the data
# (validation, NUL checks, the database adapters) far from Python's recursion limit.
MAX_JSON_DEPTH = 64


def _too_deep(data, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _reject_constant(name: str):
    # NaN and Infinity are not JSON (RFC 8259) and no database JSON column stores them.
    raise ValueError(f"{name} is not valid JSON")


def _content_length(request) -> int | None:
    if request is None:
        return None
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"Request body too large: the limit is {limit} bytes (MAX_REQUEST_BODY_BYTES)."
    )


class StandardPagination(PageNumberPagination):
    """`?page=N&page_size=M` (default 50, at most 500)."""

    page_size_query_param = "page_size"
    max_page_size = 500


def route(pattern: str, view, name: str):
    """A URL pattern under /api/v1/ whose trailing slash is optional (`events` == `events/`)."""
    return re_path(rf"^{pattern}/?$", view, name=name)


@sync_and_async_middleware
def chunked_body_length_middleware(get_response):
    """Give a de-chunked request body its Content-Length, so that DRF reads it.

    DRF takes a request without Content-Length to have no body at all, so a client that streams
    (Transfer-Encoding: chunked) would be told its events are missing. Under ASGI, Django has
    the whole body in a seekable file by the time a view runs, so its size is known. Sync and
    async capable, so that it keeps Django's ASGI middleware chain asynchronous.
    """
    if iscoroutinefunction(get_response):

        async def async_middleware(request):
            _set_chunked_length(request)
            return await get_response(request)

        return async_middleware

    def middleware(request):
        _set_chunked_length(request)
        return get_response(request)

    return middleware


def _set_chunked_length(request) -> None:
    meta = request.META
    if (
        meta.get("CONTENT_LENGTH")
        or "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        return
    stream = getattr(request, "_stream", None)
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        meta["CONTENT_LENGTH"] = str(stream.seek(0, io.SEEK_END))
        stream.seek(0)

"""Unknown query parameters are an error, not a silent "everything".

A typo (`?user=bob`, `?mitre=T1110`) used to be ignored and the list answered with every row,
which an analyst reads as "bob did all of this". List views call `reject_unknown_query_params`
(or mix in `StrictQueryParamsMixin`) and answer 400 naming each parameter they do not know.
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import ValidationError

# Understood by every list view: pagination and DRF's renderer override.
COMMON_PARAMS = frozenset({"page", "page_size", "format"})


def reject_unknown_query_params(request, allowed: Iterable[str]) -> None:
    """400 `{"<name>": ["Unknown query parameter; known: a, b, c."]}` for each unknown one."""
    known = COMMON_PARAMS | set(allowed)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        hint = ", ".join(sorted(known))
        raise ValidationError(
            {name: [f"Unknown query parameter; known: {hint}."] for name in unknown}
        )


def list_view_params(view) -> set[str]:
    """What a DRF list view understands: its filterset's filters, `search`, `ordering`."""
    names: set[str] = set()
    filterset_class = getattr(view, "filterset_class", None)
    if filterset_class is not None:
        names |= set(filterset_class.base_filters)
    names |= set(getattr(view, "filterset_fields", None) or ())
    if getattr(view, "search_fields", None):
        names.add("search")
    if getattr(view, "ordering_fields", None):
        names.add("ordering")
    return names | set(getattr(view, "extra_query_params", ()))


class StrictQueryParamsMixin:
    """For a `ListAPIView`: GET with an unknown query parameter answers 400 (see module doc)."""

    extra_query_params: tuple[str, ...] = ()

    def list(self, request, *args, **kwargs):
        reject_unknown_query_params(request, list_view_params(self))
        return super().list(request, *args, **kwargs)

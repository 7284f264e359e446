"""List endpoints answer 400 to a query parameter they do not know, instead of ignoring it.

A typo (`?user_name=` on alerts, `?mitre=`) used to return everything, which reads as "no
filter matched nothing" to an analyst. The known parameters of a list view are its filterset's
filters plus pagination, `search` and `ordering`.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError

COMMON = frozenset({"page", "page_size", "search", "ordering", "format"})


def reject_unknown(query_params, known) -> None:
    """400 naming every query parameter not in `known` (views without a filterset use it)."""
    unknown = sorted(set(query_params) - set(known))
    if unknown:
        raise ValidationError({name: ["Unknown filter parameter."] for name in unknown})


class StrictQueryParams:
    """Mixin for a DRF ListAPIView with a `filterset_class`."""

    extra_query_params: frozenset[str] = frozenset()

    def known_query_params(self) -> set[str]:
        filterset = getattr(self, "filterset_class", None)
        names = set(filterset.base_filters) if filterset is not None else set()
        # The paginator's own parameters (e.g. events' `?cursor=`).
        paginator = getattr(self, "pagination_class", None)
        for attr in ("page_query_param", "page_size_query_param", "cursor_query_param"):
            param = getattr(paginator, attr, None)
            if param:
                names.add(param)
        return names | COMMON | set(self.extra_query_params)

    def list(self, request, *args, **kwargs):
        reject_unknown(request.query_params, self.known_query_params())
        return super().list(request, *args, **kwargs)

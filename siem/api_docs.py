"""`/api/v1/docs/`: Swagger UI served entirely by this server, under the dashboard's CSP.

The assets come from drf-spectacular-sidecar (pinned in requirements.txt) through the static
files, and the page's initialisation script is a separate request (`?script=`), so the page
needs no CDN, no inline script and no inline style: it works offline and under
`script-src 'self'`.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView

from siem.views import content_security_policy


class ApiDocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = content_security_policy(request)
        response["Referrer-Policy"] = "same-origin"
        return response

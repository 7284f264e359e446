"""REST authentication for endpoint agents: `Authorization: Agent <agent_token>`.

Used only by the agent views (heartbeat, events): there, a user's `Bearer` JWT is not ours and
is refused with 401; on user endpoints this class is absent, so an agent token is refused there.
`request.user` is an `AgentPrincipal` (never a Django user, so no role permission can match it)
and `request.auth` is the `Agent`.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from agents.models import Agent, hash_agent_token
from agents.services import authenticate_agent

KEYWORD = "Agent"


class AgentPrincipal:
    """The caller of an agent endpoint; authenticated, but no user and no role."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, agent: Agent):
        self.agent = agent
        self.pk = None
        self.username = f"agent:{agent.agent_id}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class AgentTokenAuthentication(BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request) -> tuple[AgentPrincipal, Agent] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid agent token header: expected 'Agent <token>'")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid agent token") from None
        agent = authenticate_agent(token)
        if agent is None:
            # A second look only on failure, so that an operator learns why (never the token).
            revoked = Agent.objects.filter(
                token_hash=hash_agent_token(token), token_revoked_at__isnull=False
            ).exists()
            raise AuthenticationFailed("Agent token revoked" if revoked else "Invalid agent token")
        return AgentPrincipal(agent), agent

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate value makes DRF answer 401 (not 403) to unauthenticated requests.
        return f'{self.keyword} realm="agents"'


class IsAgent(BasePermission):
    message = "Only enrolled agents may call this endpoint (Authorization: Agent <token>)."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Agent)

"""The dashboard: members' pages, the playground, history, usage and API docs."""

from inference_club.gateway.web.routes import web_middleware, web_routes

__all__ = ["web_middleware", "web_routes"]

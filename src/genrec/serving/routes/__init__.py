"""The HTTP routes, one APIRouter per resource."""

from genrec.serving.routes import feedback, items, ops, recommend, users

ROUTERS = [recommend.router, feedback.router, users.router, items.router, ops.router]

__all__ = ["ROUTERS"]

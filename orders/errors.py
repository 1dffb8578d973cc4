"""The one exception the order engine raises for a request it refuses.

Imports nothing of the project: pricing, services and the pages all use it.
"""


class OrderError(Exception):
    """A request the portal refuses, with a message for the person who made it, and the form
    field it concerns when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

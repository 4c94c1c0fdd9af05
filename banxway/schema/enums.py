"""GraphQL enums that several domains' types share; a domain's own enums live in its module."""

from __future__ import annotations

import strawberry

from banxway import enums

Channel = strawberry.enum(enums.Channel)
Priority = strawberry.enum(enums.Priority)
ThreadType = strawberry.enum(enums.ThreadType)

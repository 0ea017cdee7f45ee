"""A job: a name, an input schema and the handler that runs it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar, get_type_hints

from pydantic import BaseModel, TypeAdapter
from typing_extensions import is_typeddict

from typedqueue._backoff import Backoff
from typedqueue._context import JobContext
from typedqueue._errors import ConfigurationError

if TYPE_CHECKING:
    from typedqueue._client import DispatchResult
    from typedqueue._runtime import QueueRuntime

P = TypeVar("P")

Handler = Callable[[P, JobContext], object]


class Job(Generic[P]):
    """A declared job, made by :meth:`QueueRuntime.job`.

    ``P`` is the handler's payload type: a pydantic model or a TypedDict.
    Dispatch a job with :meth:`Client.dispatch`; calling ``job.delay(**fields)``
    takes the same path, for call sites migrated from Celery's ``.delay()``.
    """

    def __init__(
        self,
        *,
        runtime: QueueRuntime[Any],
        name: str,
        schema: type[P],
        handler: Handler[P],
        max_attempts: int,
        queue: str | None,
        backoff: Backoff,
        dedupe_ttl_s: float,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.schema = schema
        self.handler = handler
        self.max_attempts = max_attempts
        self.queue = queue
        self.backoff = backoff
        self.dedupe_ttl_s = dedupe_ttl_s
        # Built once: a TypeAdapter is costly to make and cheap to reuse.
        self._adapter: TypeAdapter[P] = TypeAdapter(schema)

    def __repr__(self) -> str:
        return f"<Job {self.name!r} schema={self.schema.__name__}>"

    def validate(self, payload: object) -> P:
        """Return ``payload`` as the schema's type, or raise ``ValidationError``."""
        return self._adapter.validate_python(payload)

    def dump(self, payload: P) -> dict[str, Any]:
        """Return a validated payload as the JSON fields a message carries."""
        fields: dict[str, Any] = self._adapter.dump_python(payload, mode="json")
        return fields

    def delay(self, **fields: Any) -> DispatchResult[Any]:
        """Dispatch with the payload's fields as keyword arguments.

        For call sites moving from a Celery task's ``.delay(**kwargs)``: the
        payload is validated exactly as :meth:`Client.dispatch` does, with
        every option at its default.
        """
        client: Any = self.runtime.default_client
        result: DispatchResult[Any] = client.dispatch(self, fields)
        return result


def schema_of(handler: Callable[..., object]) -> type[Any]:
    """Return the type annotated on the handler's first parameter."""
    parameters = list(inspect.signature(handler).parameters)
    name = getattr(handler, "__qualname__", repr(handler))
    if len(parameters) != 2:
        raise ConfigurationError(
            f"handler {name} takes {len(parameters)} parameters; a handler "
            "takes two: (payload: Schema, ctx: JobContext)"
        )

    hints = get_type_hints(handler)
    schema = hints.get(parameters[0])
    if schema is None or not is_schema(schema):
        raise ConfigurationError(
            f"handler {name} annotates its payload as {schema!r}; annotate it "
            "with a pydantic model or a TypedDict, or pass schema= to job()"
        )
    return schema


def is_schema(schema: object) -> TypeGuard[type[Any]]:
    """Whether ``schema`` is a pydantic model class or a TypedDict."""
    is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
    return is_model or is_typeddict(schema)

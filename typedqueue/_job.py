"""A job: a name, an input schema and the handler that runs it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar, get_type_hints

from pydantic import BaseModel, PydanticUserError, TypeAdapter
from pydantic_core import PydanticSerializationError
from typing_extensions import is_typeddict

from typedqueue._backoff import Backoff
from typedqueue._context import JobContext
from typedqueue._errors import ConfigurationError, InvalidPayloadError, shown
from typedqueue._wire import fingerprint

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
        try:
            self._adapter: TypeAdapter[P] = TypeAdapter(schema)
        except PydanticUserError as exc:
            raise ConfigurationError(
                f"job {name!r} cannot use schema {schema.__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"<Job {self.name!r} schema={self.schema.__name__}>"

    def validate(self, payload: object) -> P:
        """Return ``payload`` as the schema's type, or raise ``ValidationError``."""
        return self._adapter.validate_python(payload)

    def fields_of(self, payload: object) -> dict[str, Any]:
        """Return ``payload`` as the JSON fields a message carries.

        Raises ``ValidationError`` unless the fields are exactly what the
        worker will validate successfully.
        """
        if isinstance(payload, BaseModel) and isinstance(payload, self.schema):
            # pydantic trusts an instance without checking it again, but it
            # may have been built with model_construct() or changed since.
            fields = self._dump(payload)
            self.validate(fields)
            return fields
        return self._dump(self.validate(payload))

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the input schema, to spot producers on another version."""
        return fingerprint(self._adapter.json_schema())

    def _dump(self, payload: Any) -> dict[str, Any]:
        try:
            fields: dict[str, Any] = self._adapter.dump_python(
                payload, mode="json", warnings=False
            )
        except (PydanticSerializationError, ValueError) as exc:
            raise InvalidPayloadError(
                f"payload of job {self.name!r} cannot be sent as JSON: {exc}; "
                "use field types with a JSON form"
            ) from exc
        return fields

    def delay(self, *args: Any, **fields: Any) -> DispatchResult[Any]:
        """Dispatch with the payload's fields as arguments.

        For call sites moving from a Celery task's ``.delay(...)``: positional
        arguments fill the schema's fields in their declared order. The payload
        is validated exactly as :meth:`Client.dispatch` does, with every option
        at its default.
        """
        names = self.field_names
        if len(args) > len(names):
            raise TypeError(
                f"job {self.name!r} has {len(names)} fields ({', '.join(names)}); "
                f"delay() got {len(args)} positional arguments"
            )
        twice = sorted(set(names[: len(args)]) & set(fields))
        if twice:
            raise TypeError(
                f"job {self.name!r} got field {twice[0]!r} both by position "
                "and by name in delay()"
            )

        client: Any = self.runtime.default_client
        payload = {**dict(zip(names[: len(args)], args, strict=True)), **fields}
        result: DispatchResult[Any] = client.dispatch(self, payload)
        return result

    @property
    def field_names(self) -> list[str]:
        """The schema's field names, in their declared order."""
        if isinstance(self.schema, type) and issubclass(self.schema, BaseModel):
            return list(self.schema.model_fields)
        return list(get_type_hints(self.schema))


def schema_of(handler: Callable[..., object]) -> type[Any]:
    """Return the type annotated on the handler's first parameter."""
    parameters = list(inspect.signature(handler).parameters)
    name = getattr(handler, "__qualname__", repr(handler))
    if len(parameters) != 2:
        raise ConfigurationError(
            f"handler {name} takes {len(parameters)} parameters; a handler "
            "takes two: (payload: Schema, ctx: JobContext)"
        )

    try:
        hints = get_type_hints(handler)
    except NameError as exc:
        raise ConfigurationError(
            f"the annotations of handler {name} cannot be resolved ({exc}); "
            "define the schema at module level, or pass schema= to job()"
        ) from exc
    schema = hints.get(parameters[0])
    if schema is None or not is_schema(schema):
        raise ConfigurationError(
            f"handler {name} annotates its payload as {shown(schema)}; annotate it "
            "with a pydantic model or a TypedDict, or pass schema= to job()"
        )
    return schema


def is_schema(schema: object) -> TypeGuard[type[Any]]:
    """Whether ``schema`` is a pydantic model class or a TypedDict."""
    is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
    return is_model or is_typeddict(schema)
